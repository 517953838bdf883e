#!/bin/sh
# sentinel-fixture.sh -- start or stop a private Sentinel setup for tests.
#
#   sentinel-fixture.sh start DIR [tls]
#                                   a master, one replica and three
#                                   sentinels (quorum 2) on free loopback
#                                   ports; writes DIR/sentinel.env.  With
#                                   tls, each also listens with TLS on its
#                                   port + TLS_SHIFT (a throwaway CA in
#                                   DIR), replication and the sentinels'
#                                   links use it, and the URL is
#                                   rediss+sentinel:// to those ports; the
#                                   plain ports stay for the tests' checks,
#                                   and DIR/server-args holds the TLS
#                                   arguments a restarted server takes
#                                   (empty without tls)
#   sentinel-fixture.sh stop DIR    stop them all and remove DIR
set -eu
. "$(dirname "$0")/fixture-lib.sh"
cmd=$1
dir=$2
tls=${3:-}
shift_tls=0
tls_args=""
if [ "$tls" = tls ]; then
    shift_tls=9000
    tls_args="--tls-cert-file $dir/server.crt --tls-key-file $dir/server.key
        --tls-ca-cert-file $dir/ca.crt --tls-auth-clients no
        --tls-replication yes"
fi

# tls_port PORT: where the server of PORT listens with TLS (tls mode).
tls_port() {
    echo $(($1 + shift_tls))
}

stop_all() {
    stop_servers "$dir"/*/redis.pid
}

# Starts master, replica and three sentinels on base..base+4.
start_all() {
    base=$1
    master=$base
    replica=$((base + 1))
    for role in master replica; do
        port=$master
        extra=""
        if [ $role = replica ]; then port=$replica; extra="--replicaof 127.0.0.1 $(tls_port $master)"; fi
        if [ -n "$tls_args" ]; then extra="$extra --tls-port $(tls_port $port) $tls_args"; fi
        rm -rf "$dir/$role"
        mkdir -p "$dir/$role"
        # shellcheck disable=SC2086
        redis-server --port $port --bind 127.0.0.1 --daemonize yes \
            --pidfile "$dir/$role/redis.pid" --logfile "$dir/$role/redis.log" \
            --dir "$dir/$role" --save "" --appendonly no $extra >/dev/null 2>&1 || return 1
        wait_up $port "$dir/$role/redis.pid" || return 1
    done
    for i in 0 1 2; do
        port=$((base + 2 + i))
        rm -rf "$dir/sentinel-$i"
        mkdir -p "$dir/sentinel-$i"
        cat >"$dir/sentinel-$i/sentinel.conf" <<CONF
port $port
bind 127.0.0.1
daemonize yes
pidfile $dir/sentinel-$i/redis.pid
logfile $dir/sentinel-$i/redis.log
dir $dir/sentinel-$i
sentinel monitor mymaster 127.0.0.1 $(tls_port $master) 2
sentinel down-after-milliseconds mymaster 2000
sentinel failover-timeout mymaster 4000
sentinel parallel-syncs mymaster 1
CONF
        if [ -n "$tls_args" ]; then
            {
                echo "tls-port $(tls_port $port)"
                echo "$tls_args" | sed 's/^ *--//; s/ --/\n/g'
            } >>"$dir/sentinel-$i/sentinel.conf"
        fi
        redis-server "$dir/sentinel-$i/sentinel.conf" --sentinel >/dev/null 2>&1 || return 1
        wait_up $port "$dir/sentinel-$i/redis.pid" || return 1
    done
}

case "$cmd" in
start)
    stop_all 2>/dev/null || true
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ -n "$tls_args" ]; then
        make_ca "$dir" ca
        make_cert "$dir" server ca "DNS:localhost,IP:127.0.0.1" 2
    fi
    # Ports 16000-19994 (TLS: 25000-28994 too); a base where any server
    # fails to start is abandoned.
    base=0
    for try in 1 2 3 4 5 6 7 8; do
        candidate=$(candidate_port 16000 3990 $try)
        if start_all $candidate; then base=$candidate; break; fi
        stop_all
        sleep 0.2
    done
    [ "$base" != 0 ] || { echo "sentinel-fixture: could not start the servers" >&2; exit 1; }
    master=$base
    replica=$((base + 1))
    # Ready when the replica is in sync and every sentinel sees it.
    n=0
    until redis-cli -p $replica info replication | grep -q 'master_link_status:up' &&
          [ "$(redis-cli -p $((base + 2)) sentinel replicas mymaster 2>/dev/null | grep -c "^$(tls_port $replica)\$")" -ge 1 ]; do
        n=$((n + 1)); [ $n -lt 300 ] || { echo "sentinel setup not ready" >&2; exit 1; }
        sleep 0.1
    done
    if [ -n "$tls_args" ]; then
        url="rediss+sentinel://127.0.0.1:$(tls_port $((base + 2))),127.0.0.1:$(tls_port $((base + 3))),127.0.0.1:$(tls_port $((base + 4)))/mymaster?ssl_ca_certs=$dir/ca.crt"
    else
        url="redis+sentinel://127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3)),127.0.0.1:$((base + 4))/mymaster"
    fi
    # For test_sentinel, which starts a killed server again as a replica:
    # without them it would rejoin with no TLS port, and the sentinels
    # (which reach it over TLS) would never count it.
    echo "$tls_args" | tr -s ' \n' ' ' >"$dir/server-args"
    {
        echo "FAIRLOCK_SENTINEL_URL=$url"
        echo "FAIRLOCK_SENTINEL_TLS_SHIFT=$shift_tls"
        echo "FAIRLOCK_SENTINEL_MASTER_PORT=$master"
        echo "FAIRLOCK_SENTINEL_REPLICA_PORT=$replica"
        echo "FAIRLOCK_SENTINEL_PORT=$((base + 2))"
        echo "FAIRLOCK_SENTINEL_DIR=$dir"
    } >"$dir/sentinel.env"
    ;;
stop)
    stop_all
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
