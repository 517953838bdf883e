#!/bin/sh
# redis-fixture.sh -- start or stop the private redis-server of the tests.
#
#   redis-fixture.sh start DIR [ARGS...]
#                                start one on DIR/redis.sock and a free
#                                loopback port, with ARGS added to its
#                                configuration; write DIR/redis.env
#   redis-fixture.sh stop DIR    stop it and remove DIR
#
# The server keeps nothing on disk and never touches a user's Redis: it
# has its own socket and port.  DEBUG is enabled for fault tests.
set -eu
. "$(dirname "$0")/fixture-lib.sh"
cmd=$1
dir=$2
shift 2
case "$cmd" in
start)
    # A server left over from an interrupted run must be gone before a new
    # one starts here: its shutdown would delete the new one's socket.
    stop_servers "$dir/redis.pid"
    rm -rf "$dir"
    mkdir -p "$dir"
    # A socket path must fit in sun_path (108 bytes): fall back to /tmp.
    sockdir=$dir
    if [ ${#dir} -gt 80 ]; then
        sockdir=$(mktemp -d /tmp/fairlock-test.XXXXXX)
    fi
    port=0
    for try in 1 2 3 4 5 6 7 8 9 10; do
        candidate=$(candidate_port 10000 6000 $try)
        if redis-server --port "$candidate" --bind 127.0.0.1 \
            --unixsocket "$sockdir/redis.sock" --unixsocketperm 700 \
            --daemonize yes --pidfile "$dir/redis.pid" \
            --logfile "$dir/redis.log" --dir "$dir" \
            --save "" --appendonly no --enable-debug-command local "$@" \
            >/dev/null 2>&1; then
            # daemonize returns before the bind: wait for the socket.
            n=0
            while [ $n -lt 50 ] && ! redis-cli -s "$sockdir/redis.sock" ping >/dev/null 2>&1; do
                sleep 0.1
                n=$((n + 1))
            done
            if redis-cli -s "$sockdir/redis.sock" ping >/dev/null 2>&1 &&
               redis-cli -p "$candidate" ping >/dev/null 2>&1; then
                port=$candidate
                break
            fi
            stop_servers "$dir/redis.pid"
            sleep 0.2
        fi
    done
    if [ "$port" = 0 ]; then
        echo "redis-fixture: could not start redis-server" >&2
        cat "$dir/redis.log" >&2 2>/dev/null || true
        exit 1
    fi
    {
        echo "FAIRLOCK_TEST_URL=unix://$sockdir/redis.sock"
        echo "FAIRLOCK_TEST_SOCKET=$sockdir/redis.sock"
        echo "FAIRLOCK_TEST_TCP_URL=redis://127.0.0.1:$port"
        echo "FAIRLOCK_TEST_PORT=$port"
        echo "FAIRLOCK_TEST_PIDFILE=$dir/redis.pid"
    } >"$dir/redis.env"
    ;;
stop)
    if [ -f "$dir/redis.env" ]; then
        sock=$(sed -n 's/^FAIRLOCK_TEST_SOCKET=//p' "$dir/redis.env")
        redis-cli -s "$sock" shutdown nosave >/dev/null 2>&1 || true
        case "$sock" in /tmp/fairlock-test.*) rm -rf "$(dirname "$sock")" ;; esac
    fi
    stop_servers "$dir/redis.pid"
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
