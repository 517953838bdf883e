#!/bin/sh
# tls-fixture.sh -- start or stop a private redis-server that speaks TLS.
#
#   tls-fixture.sh start DIR     make a throwaway CA, server and client
#                                certificates in DIR (openssl), start a
#                                server with TLS on a free loopback port
#                                (clients must show a certificate of that
#                                CA) and plain text on DIR's unix socket
#                                only (for the tests' own checks); write
#                                DIR/redis.env as redis-fixture.sh does,
#                                with FAIRLOCK_TEST_URL=rediss://...
#   tls-fixture.sh stop DIR      stop it and remove DIR
#
# Also made, for test_tls: a second CA the server does not use, a client
# certificate of that CA, and an expired server certificate.
set -eu
. "$(dirname "$0")/fixture-lib.sh"
cmd=$1
dir=$2
shift 2

case "$cmd" in
start)
    stop_servers "$dir/redis.pid" "$dir/expired.pid"
    rm -rf "$dir"
    mkdir -p "$dir"
    sockdir=$dir
    if [ ${#dir} -gt 80 ]; then
        sockdir=$(mktemp -d /tmp/fairlock-test.XXXXXX)
    fi
    make_ca "$dir" ca
    make_ca "$dir" other-ca
    make_cert "$dir" server ca "DNS:localhost,IP:127.0.0.1" 2
    make_cert "$dir" client ca "DNS:fairlock-client" 2
    make_cert "$dir" other-client other-ca "DNS:fairlock-client" 2
    make_cert "$dir" expired ca "DNS:localhost,IP:127.0.0.1" -1
    # A CA directory as c_rehash makes it, for ssl_ca_path.
    mkdir -p "$dir/cadir"
    cp "$dir/ca.crt" "$dir/cadir/$(openssl x509 -hash -noout -in "$dir/ca.crt").0"

    # start NAME PORT CERT: a TLS server on PORT presenting CERT.
    start() {
        redis-server --port 0 --tls-port "$2" --bind 127.0.0.1 \
            --tls-cert-file "$dir/$3.crt" --tls-key-file "$dir/$3.key" \
            --tls-ca-cert-file "$dir/ca.crt" --tls-auth-clients yes \
            --unixsocket "$sockdir/$1.sock" --unixsocketperm 700 \
            --daemonize yes --pidfile "$dir/$1.pid" \
            --logfile "$dir/$1.log" --dir "$dir" --dbfilename "$1.rdb" \
            --save "" --appendonly no --enable-debug-command local \
            >/dev/null 2>&1 || return 1
        # The expired certificate fails any check but --insecure's.
        check="--cacert $dir/ca.crt"
        [ "$3" = expired ] && check=--insecure
        n=0
        until redis-cli -s "$sockdir/$1.sock" ping >/dev/null 2>&1 &&
              redis-cli --tls $check --cert "$dir/client.crt" \
                  --key "$dir/client.key" -p "$2" ping >/dev/null 2>&1; do
            n=$((n + 1))
            [ $n -lt 50 ] || return 1
            sleep 0.1
        done
    }
    port=0
    for try in 1 2 3 4 5 6 7 8 9 10; do
        candidate=$(candidate_port 23000 4000 $try)
        if start redis "$candidate" server &&
           start expired $((candidate + 1)) expired; then
            port=$candidate
            break
        fi
        stop_servers "$dir/redis.pid" "$dir/expired.pid"
        sleep 0.2
    done
    if [ "$port" = 0 ]; then
        echo "tls-fixture: could not start redis-server with TLS" >&2
        cat "$dir/redis.log" >&2 2>/dev/null || true
        exit 1
    fi
    q="ssl_ca_certs=$dir/ca.crt&ssl_certfile=$dir/client.crt&ssl_keyfile=$dir/client.key"
    {
        echo "FAIRLOCK_TEST_URL=rediss://127.0.0.1:$port?$q"
        echo "FAIRLOCK_TEST_SOCKET=$sockdir/redis.sock"
        echo "FAIRLOCK_TEST_TCP_URL=rediss://127.0.0.1:$port?$q"
        echo "FAIRLOCK_TEST_PORT=$port"
        echo "FAIRLOCK_TEST_PIDFILE=$dir/redis.pid"
        echo "FAIRLOCK_TEST_TLS_DIR=$dir"
        echo "FAIRLOCK_TEST_EXPIRED_PORT=$((port + 1))"
    } >"$dir/redis.env"
    ;;
stop)
    if [ -f "$dir/redis.env" ]; then
        sock=$(sed -n 's/^FAIRLOCK_TEST_SOCKET=//p' "$dir/redis.env")
        for s in "$sock" "$(dirname "$sock")/expired.sock"; do
            redis-cli -s "$s" shutdown nosave >/dev/null 2>&1 || true
        done
        case "$sock" in /tmp/fairlock-test.*) rm -rf "$(dirname "$sock")" ;; esac
    fi
    stop_servers "$dir/redis.pid" "$dir/expired.pid"
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
