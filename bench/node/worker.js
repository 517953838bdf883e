#!/usr/bin/env node
// worker.js -- benchmark worker for the node `redlock` and `redis-semaphore`
// Mutex and Semaphore.
//
// Speaks the line protocol of bench/PROTOCOL.md on stdin/stdout, like
// bench/fairlock_worker.c, so bench/run times every lock alike.  Both locks
// run on ioredis with their own default retry settings; only the lease is
// set (--ttl-ms), and the semaphore's acquire timeout is lifted so that a
// long queue waits instead of failing.
'use strict';

const readline = require('readline');
const Redis = require('ioredis');

function parseArgs(argv) {
  const a = { host: '127.0.0.1', port: 0, unix: null, name: null, ttlMs: 10000, impl: null, permits: 1 };
  for (let i = 2; i + 1 < argv.length; i += 2) {
    const k = argv[i], v = argv[i + 1];
    if (k === '--host') a.host = v;
    else if (k === '--port') a.port = Number(v);
    else if (k === '--unix') a.unix = v;
    else if (k === '--name') a.name = v;
    else if (k === '--ttl-ms') a.ttlMs = Number(v) > 0 ? Number(v) : 10000;
    else if (k === '--impl') a.impl = v;
    else if (k === '--permits') a.permits = Number(v);
    // --check-ms and --sleep belong to other workers: one command line fits all.
  }
  if (!a.name || !['redlock', 'semaphore', 'sem'].includes(a.impl)) {
    process.stderr.write('usage: worker.js --impl redlock|semaphore|sem --name NAME (--port N | --unix PATH) [--ttl-ms N] [--permits N]\n');
    process.exit(2);
  }
  return a;
}

const args = parseArgs(process.argv);

// uv_hrtime reads CLOCK_MONOTONIC on Linux, the clock of every worker.
const nowNs = () => process.hrtime.bigint();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const reply = (text) => process.stdout.write(text + '\n');

function connect() {
  const opts = { enableAutoPipelining: false, maxRetriesPerRequest: 1, lazyConnect: false };
  return args.unix ? new Redis({ ...opts, path: args.unix }) : new Redis({ ...opts, host: args.host, port: args.port });
}

// A lock object for one client: acquire() resolves when held, release()
// when released.  Each call of acquire() makes a fresh request.
function makeLock(client) {
  if (args.impl === 'redlock') {
    const Redlock = require('redlock');
    // retryCount -1: wait for ever, as the other workers do; retryDelay and
    // retryJitter stay at redlock's defaults (200 ms +- 100 ms).
    const redlock = new Redlock([client], { retryCount: -1 });
    let held = null;
    return {
      async acquire() { held = await redlock.lock(args.name, args.ttlMs); },
      async release() { await held.unlock(); held = null; },
    };
  }
  if (args.impl === 'sem') {
    // redis-semaphore's counting semaphore, with its default retry
    // interval; the acquire timeout lifted as for the Mutex.
    const { Semaphore } = require('redis-semaphore');
    let sem = null;
    return {
      async acquire() {
        sem = new Semaphore(client, args.name, args.permits, { lockTimeout: args.ttlMs, acquireTimeout: 3600 * 1000 });
        await sem.acquire();
      },
      async release() { await sem.release(); sem = null; },
    };
  }
  const { Mutex } = require('redis-semaphore');
  let mutex = null;
  return {
    async acquire() {
      mutex = new Mutex(client, args.name, { lockTimeout: args.ttlMs, acquireTimeout: 3600 * 1000 });
      await mutex.acquire();
    },
    async release() { await mutex.release(); mutex = null; },
  };
}

const client = connect();
const lock = makeLock(client);
let crowd = null;

const commands = {
  async ping(n) {
    const out = [];
    for (let i = 0; i < Number(n); i++) {
      const t0 = nowNs();
      await client.ping();
      out.push(nowNs() - t0);
    }
    reply('ok ' + out.join(' '));
  },
  async cycles(n) {
    const out = [];
    for (let i = 0; i < Number(n); i++) {
      const t0 = nowNs();
      await lock.acquire();
      await lock.release();
      out.push(nowNs() - t0);
    }
    reply('ok ' + out.join(' '));
  },
  async acquire() {
    await lock.acquire();
    reply(`ok ${nowNs()} 0`);
  },
  async release() {
    const t = nowNs();
    await lock.release();
    reply(`ok ${t}`);
  },
  async fifo(holdMs) {
    await lock.acquire();
    const t = nowNs();
    await sleep(Number(holdMs));
    await lock.release();
    reply(`ok ${t} 0`);
  },
  async spells(start, end, holdUs) {
    const holds = [];
    const delayMs = Number(BigInt(start) - nowNs()) / 1e6;
    if (delayMs > 0) await sleep(delayMs);
    const stop = BigInt(end);
    while (nowNs() < stop) {
      await lock.acquire();
      const t1 = nowNs();
      if (Number(holdUs) > 0) await sleep(Number(holdUs) / 1000);
      const t2 = nowNs();
      await lock.release();
      holds.push(`${t1}:${t2}`);
    }
    reply(`ok ${holds.length} ` + holds.join(' '));
  },
  async hammer(start, end, counter) {
    const grants = [];
    const delayMs = Number(BigInt(start) - nowNs()) / 1e6;
    if (delayMs > 0) await sleep(delayMs);
    const stop = BigInt(end);
    while (nowNs() < stop) {
      await lock.acquire();
      grants.push(nowNs());
      const n = await client.get(counter);
      await client.set(counter, Number(n || 0) + 1);
      await lock.release();
    }
    reply(`ok ${grants.length} ` + grants.map((t) => `${t}:0`).join(' '));
  },
  async many(n, holdMs) {
    if (crowd) { reply('err a crowd is already waiting; send join first'); return; }
    const waiters = [];
    for (let i = 0; i < Number(n); i++) {
      // One connection per waiter, as separate processes would have.
      waiters.push((async () => {
        const c = connect();
        try {
          const l = makeLock(c);
          await l.acquire();
          const t = nowNs();
          await sleep(Number(holdMs));
          await l.release();
          return t;
        } catch (e) {
          process.stderr.write(`worker.js: waiter failed: ${e}\n`);
          return null;
        } finally {
          c.disconnect();
        }
      })());
    }
    crowd = waiters;
    reply(`ok ${n}`);
  },
  async join() {
    const results = await Promise.all(crowd || []);
    crowd = null;
    const ok = results.filter((t) => t !== null);
    reply(`ok ${ok.length} ${results.length - ok.length} ` + ok.map((t) => `${t}:0`).join(' '));
  },
};

async function serve() {
  await client.ping();
  const version = require(args.impl === 'redlock' ? 'redlock/package.json' : 'redis-semaphore/package.json').version;
  reply(`ready ${args.impl} ${version}`);
  const rl = readline.createInterface({ input: process.stdin });
  // Commands run one at a time, in order, as in the other workers.
  for await (const line of rl) {
    const words = line.trim().split(/\s+/);
    if (!words[0]) continue;
    if (words[0] === 'quit') break;
    const fn = commands[words[0]];
    if (!fn) { reply(`err unknown command: ${line.trim()}`); continue; }
    try {
      await fn(...words.slice(1));
    } catch (e) {
      reply(`err ${words[0]}: ${String(e && e.message ? e.message : e).replace(/\n/g, ' ')}`);
    }
  }
  client.disconnect();
  process.exit(0);
}

serve().catch((e) => { reply(`err ${e}`); process.exit(1); });
