#!/bin/sh
# cluster-fixture.sh -- start or stop a private Redis Cluster for the tests.
#
#   cluster-fixture.sh start DIR [tls]
#                                  three masters and three replicas on free
#                                  loopback ports; writes DIR/cluster.env.
#                                  With tls, each node also listens with TLS
#                                  on its port + 2500 (a throwaway CA in
#                                  DIR), the cluster bus and replication use
#                                  TLS, and the URL is rediss+cluster:// to
#                                  those ports: a TLS client is redirected
#                                  to TLS ports, a plain one (the tests'
#                                  checks) to plain ones
#   cluster-fixture.sh stop DIR    stop them and remove DIR
#
# Nothing is persisted and nothing listens beyond 127.0.0.1.
set -eu
. "$(dirname "$0")/fixture-lib.sh"
cmd=$1
dir=$2
tls=${3:-}
nodes=6
tls_shift=2500

stop_all() {
    stop_servers "$dir"/node-*/redis.pid
}

case "$cmd" in
start)
    stop_all 2>/dev/null || true
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$tls" = tls ]; then
        make_ca "$dir" ca
        make_cert "$dir" server ca "DNS:localhost,IP:127.0.0.1" 2
    fi
    # Ports (and their cluster bus ports, +10000) may be taken by other
    # test runs: a base whose nodes do not all come up is abandoned.
    base=0
    for try in 1 2 3 4 5 6 7 8; do
        # Data ports 20000-22495, bus ports 30000-32495.
        candidate=$(candidate_port 20000 2490 $try)
        i=0
        addrs=""
        while [ $i -lt $nodes ]; do
            port=$((candidate + i))
            rm -rf "$dir/node-$i"
            mkdir -p "$dir/node-$i"
            tls_args=""
            if [ "$tls" = tls ]; then
                # The bus stays on port + 10000 (it would follow the TLS
                # port), and speaks TLS.
                tls_args="--tls-port $((port + tls_shift)) --tls-cluster yes
                    --tls-replication yes --cluster-port $((port + 10000))
                    --tls-cert-file $dir/server.crt
                    --tls-key-file $dir/server.key
                    --tls-ca-cert-file $dir/ca.crt --tls-auth-clients no"
            fi
            # shellcheck disable=SC2086
            redis-server --port $port --bind 127.0.0.1 --cluster-enabled yes $tls_args \
                --cluster-config-file "$dir/node-$i/nodes.conf" \
                --cluster-node-timeout 2000 --daemonize yes \
                --pidfile "$dir/node-$i/redis.pid" --logfile "$dir/node-$i/redis.log" \
                --dir "$dir/node-$i" --save "" --appendonly no \
                --enable-debug-command local >/dev/null 2>&1 || true
            addrs="$addrs 127.0.0.1:$port"
            i=$((i + 1))
        done
        up=1
        i=0
        while [ $i -lt $nodes ]; do
            wait_up $((candidate + i)) "$dir/node-$i/redis.pid" || { up=0; break; }
            i=$((i + 1))
        done
        if [ $up = 1 ]; then base=$candidate; break; fi
        stop_all
        sleep 0.2
    done
    [ "$base" != 0 ] || { echo "cluster-fixture: could not start the nodes" >&2; exit 1; }
    # shellcheck disable=SC2086
    redis-cli --cluster create $addrs --cluster-replicas 1 --cluster-yes \
        >"$dir/create.log" 2>&1 || { cat "$dir/create.log" >&2; exit 1; }
    # Every node, not just the first, must see the cluster as ok and know
    # all slots, or early commands meet CLUSTERDOWN or stale redirects.
    i=0
    while [ $i -lt $nodes ]; do
        n=0
        until [ "$(redis-cli -p $((base + i)) cluster info | tr -d '\r' |
                   sed -n 's/^cluster_state://p')" = ok ] &&
              [ "$(redis-cli -p $((base + i)) cluster info | tr -d '\r' |
                   sed -n 's/^cluster_slots_ok://p')" = 16384 ]; do
            n=$((n + 1)); [ $n -lt 300 ] || { echo "cluster not ok on node $i" >&2; exit 1; }
            sleep 0.1
        done
        i=$((i + 1))
    done
    # Replicas attach after the create command returns.
    n=0
    until [ "$(redis-cli -p $base cluster nodes | grep -c slave)" -ge 3 ]; do
        n=$((n + 1)); [ $n -lt 300 ] || { echo "replicas did not attach" >&2; exit 1; }
        sleep 0.1
    done
    {
        echo "FAIRLOCK_CLUSTER_BASE_PORT=$base"
        echo "FAIRLOCK_CLUSTER_NODES=$nodes"
        if [ "$tls" = tls ]; then
            echo "FAIRLOCK_CLUSTER_URL=rediss+cluster://127.0.0.1:$((base + tls_shift)),127.0.0.1:$((base + 1 + tls_shift))?ssl_ca_certs=$dir/ca.crt"
        else
            echo "FAIRLOCK_CLUSTER_URL=redis+cluster://127.0.0.1:$base,127.0.0.1:$((base + 1))"
        fi
        echo "FAIRLOCK_CLUSTER_DIR=$dir"
        if [ "$tls" = tls ]; then
            echo "FAIRLOCK_CLUSTER_TLS_SHIFT=$tls_shift"
        else
            echo "FAIRLOCK_CLUSTER_TLS_SHIFT=0"
        fi
    } >"$dir/cluster.env"
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
