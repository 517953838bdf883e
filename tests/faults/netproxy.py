"""netproxy.py -- a TCP proxy between the clients and Redis that injects
network faults: added latency, held replies, a reset in the middle of a
script call, and half-open connections.

It runs an asyncio loop in a thread of the driver.  Faults are switched on
and off from the driver's thread; the pumps read the settings for every
chunk they move, so a change takes effect at the next chunk.

  latency_ms      every chunk, either way, is delayed this long (order kept)
  hold_until      replies (server -> client) are held back until this
                  time.monotonic() value, then delivered at once
  reset_prob      probability that a script call (EVALSHA/EVAL) is reset,
                  while a budget below is left:
  reset_after     budget of resets after the whole call reached the server
                  and before the reply can come back (RST): the server ran
                  it, the client cannot know
  reset_partial   budget of resets after only part of the call reached the
                  server: the server never runs it
  half_open(n)    n live connections stop forwarding both ways and lose
                  their server side, while the client side stays open and
                  silent: the client's peer is gone and it is not told

Between a TLS client and a TLS server (tls=True) the proxy cannot read the
commands, so it tells a script call by its size: a chunk that starts with
a TLS application-data record at least TLS_SCRIPT_MIN bytes long.  The
library sends one command per record; what it sends through the proxy is
EVALSHA (224 bytes and more in RESP: the SHA-1, the keys and the token)
and BLPOP (84 bytes for the scenario's names), the rest goes to the data
server directly.  Half a record, as in a partial reset, is never decrypted,
so the server never runs it.

Counters of what was injected are in .stats.
"""

import asyncio
import random
import socket
import struct
import threading
import time

SCRIPT_MARKERS = (b"$7\r\nEVALSHA\r\n", b"$4\r\nEVAL\r\n",
                  b"$7\r\nevalsha\r\n", b"$4\r\neval\r\n")
TLS_APPLICATION_DATA = 0x17
# Record body length: the command plus at most 29 bytes of TLS framing
# (TLS 1.2 GCM; 17 in TLS 1.3), well apart from BLPOP and EVALSHA.
TLS_SCRIPT_MIN = 160


def is_script_call(data, tls):
    """Whether a chunk from the client carries a script call."""
    if not tls:
        return any(m in data for m in SCRIPT_MARKERS)
    return (len(data) >= 5 and data[0] == TLS_APPLICATION_DATA and
            int.from_bytes(data[3:5], "big") >= TLS_SCRIPT_MIN)


class _Conn:
    def __init__(self, proxy, creader, cwriter):
        self.proxy = proxy
        self.creader, self.cwriter = creader, cwriter
        self.sreader = self.swriter = None
        self.dead = False
        self.half_open = False

    def reset_client(self):
        """Closes the client side with an RST, not a FIN, as a crashed
        middlebox or peer would."""
        sock = self.cwriter.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.cwriter.transport.abort()
        if self.swriter is not None:
            self.swriter.transport.abort()
        self.dead = True

    def go_half_open(self):
        """The server side goes away (Redis sees the client leave and drops
        its blocked commands); the client side is kept open and never
        answered, so the client finds out only by its own timeout."""
        self.half_open = True
        if self.swriter is not None:
            self.swriter.transport.abort()


class Proxy:
    def __init__(self, upstream_host, upstream_port, seed=0, tls=False):
        self.upstream = (upstream_host, upstream_port)
        self.tls = tls
        self.rng = random.Random(seed)
        self.latency_ms = 0
        self.hold_until = 0.0
        self.reset_prob = 0.0
        self.reset_after = 0
        self.reset_partial = 0
        self.stats = {"connections": 0, "resets_after": 0,
                      "resets_partial": 0, "half_open": 0,
                      "held_replies": 0, "delayed_chunks": 0}
        self.conns = set()
        self.port = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()
        self._server = None
        self._error = None

    # ---- driver side ----------------------------------------------------

    def start(self, port_candidates):
        """Listens on the first port of port_candidates that binds."""
        self._ports = list(port_candidates)
        self._thread.start()
        self._ready.wait(10)
        if self.port is None:
            raise RuntimeError("proxy could not listen: %s" % self._error)
        return self.port

    def stop(self):
        def _stop():
            for c in list(self.conns):
                c.cwriter.transport.abort()
                if c.swriter is not None:
                    c.swriter.transport.abort()
            if self._server is not None:
                self._server.close()
            self._loop.stop()
        self._loop.call_soon_threadsafe(_stop)
        self._thread.join(10)

    def clear(self):
        self.latency_ms = 0
        self.hold_until = 0.0
        self.reset_prob = 0.0
        self.reset_after = 0
        self.reset_partial = 0

    def half_open(self, count):
        """Turns up to `count` live connections half-open; returns how many
        it did."""
        done = threading.Event()
        result = []

        def _pick():
            live = [c for c in self.conns
                    if not c.dead and not c.half_open and c.swriter]
            self.rng.shuffle(live)
            for c in live[:count]:
                c.go_half_open()
            self.stats["half_open"] += len(live[:count])
            result.append(len(live[:count]))
            done.set()
        self._loop.call_soon_threadsafe(_pick)
        done.wait(5)
        return result[0] if result else 0

    # ---- loop side -------------------------------------------------------

    def _run(self):
        asyncio.set_event_loop(self._loop)
        for port in self._ports:
            try:
                self._server = self._loop.run_until_complete(
                    asyncio.start_server(self._accept, "127.0.0.1", port))
                self.port = port
                break
            except OSError as e:
                self._error = e
        self._ready.set()
        if self.port is not None:
            self._loop.run_forever()

    async def _accept(self, creader, cwriter):
        conn = _Conn(self, creader, cwriter)
        self.conns.add(conn)
        self.stats["connections"] += 1
        try:
            conn.sreader, conn.swriter = await asyncio.open_connection(
                *self.upstream)
        except OSError:
            cwriter.transport.abort()
            self.conns.discard(conn)
            return
        up = asyncio.Queue()
        down = asyncio.Queue()
        tasks = [asyncio.ensure_future(t) for t in (
            self._read_client(conn, up), self._write(conn, up, True),
            self._read_server(conn, down), self._write(conn, down, False))]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        # One side is gone.  A half-open connection keeps its client side
        # until the client gives up and closes it: its reader, which now
        # discards everything, ends at the client's EOF.
        if conn.half_open and not conn.dead:
            try:
                await tasks[0]
            except (OSError, asyncio.CancelledError):
                pass
        for t in tasks:
            t.cancel()
        for w in (cwriter, conn.swriter):
            try:
                w.transport.abort()
            except Exception:
                pass
        self.conns.discard(conn)

    async def _read_client(self, conn, queue):
        while True:
            data = await conn.creader.read(65536)
            if not data:
                await queue.put(None)
                return
            if conn.half_open:
                continue
            if (is_script_call(data, self.tls) and
                    (self.reset_after or self.reset_partial) and
                    self.rng.random() < self.reset_prob):
                if self.reset_partial and (not self.reset_after or
                                           self.rng.random() < 0.5):
                    # Half the command goes through; the reset makes the
                    # server drop the incomplete request.
                    self.reset_partial -= 1
                    self.stats["resets_partial"] += 1
                    await queue.put((time.monotonic(),
                                     data[:max(1, len(data) // 2)], "reset"))
                    return
                self.reset_after -= 1
                self.stats["resets_after"] += 1
                await queue.put((time.monotonic(), data, "reset"))
                return
            await queue.put((time.monotonic() + self.latency_ms / 1000.0,
                             data, None))

    async def _read_server(self, conn, queue):
        while True:
            data = await conn.sreader.read(65536)
            if not data:
                await queue.put(None)
                return
            if conn.half_open:
                continue
            due = time.monotonic() + self.latency_ms / 1000.0
            if self.hold_until > due:
                due = self.hold_until
                self.stats["held_replies"] += 1
            await queue.put((due, data, None))

    async def _write(self, conn, queue, to_server):
        writer = conn.swriter if to_server else conn.cwriter
        while True:
            item = await queue.get()
            if item is None:
                return
            due, data, then = item
            wait = due - time.monotonic()
            if wait > 0:
                self.stats["delayed_chunks"] += 1
                await asyncio.sleep(wait)
            if conn.half_open or conn.dead:
                continue
            writer.write(data)
            await writer.drain()
            if then == "reset":
                # Let the server read the bytes before the RST can overtake
                # them on its side: Redis discards unread input of a reset
                # connection.
                await asyncio.sleep(0.005)
                conn.reset_client()
                return
