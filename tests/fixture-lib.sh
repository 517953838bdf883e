# fixture-lib.sh -- sourced by the fixture scripts.
#
# ours PID: whether PID is a redis-server or redis-sentinel process.  A pid
# file can outlive its server (kill -9, an interrupted run), and pids are
# reused quickly where pid_max is 32768 and a test starts thousands of
# threads: a signal must never reach whatever process has that pid now.
ours() {
    [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] || return 1
    case "$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" in
    redis-server* | redis-sentinel* | */redis-server* | */redis-sentinel*)
        return 0 ;;
    esac
    return 1
}

# stop_servers PIDFILE...: stops each server of ours named by a pid file and
# waits until every one has exited (up to 10 s each): a server still
# shutting down would delete the files of its successor.  A paused server
# is resumed first, or it could not act on the signal.
stop_servers() {
    pids=""
    for pidfile in "$@"; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        ours "$pid" || continue
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null && pids="$pids $pid"
    done
    for pid in $pids; do
        n=0
        while kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do
            sleep 0.1
            n=$((n + 1))
        done
    done
}

# candidate_port FIRST SPAN TRY: the TRY-th port to try in FIRST..FIRST+SPAN-1.
# Spread by our pid, so that concurrent test runs start apart; a caller
# gives up a port (or a base of several) where any server fails to start.
# Keep FIRST+SPAN (and cluster bus ports, +10000) below 32768, where Linux
# does not pick ports for outgoing connections, whose TIME_WAIT would make a
# bind fail.
candidate_port() {
    echo $(( $1 + ($$ * 13 + $3 * 397) % $2 ))
}

# wait_up PORT PIDFILE: succeeds once our server answers on PORT and its pid
# file names a live process (daemonize returns before the bind), within 5 s.
wait_up() {
    n=0
    until redis-cli -p "$1" ping >/dev/null 2>&1 && [ -f "$2" ] &&
          kill -0 "$(cat "$2")" 2>/dev/null; do
        n=$((n + 1)); [ $n -lt 50 ] || return 1
        sleep 0.1
    done
}

# make_ca DIR NAME: a throwaway CA, DIR/NAME.key and DIR/NAME.crt (2 days).
make_ca() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -nodes -keyout "$1/$2.key" -out "$1/$2.crt" -days 2 \
        -subj "/CN=fairlock test $2" 2>/dev/null
    chmod 600 "$1/$2.key"
}

# make_cert DIR NAME CA SAN DAYS: DIR/NAME.key and DIR/NAME.crt signed by
# DIR/CA.{key,crt}, valid DAYS days from now (negative: already expired),
# for the subjectAltName SAN ("DNS:localhost,IP:127.0.0.1").
make_cert() {
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$1/$2.key" -out "$1/$2.csr" -subj "/CN=$2" 2>/dev/null
    printf 'subjectAltName=%s\n' "$4" >"$1/$2.ext"
    openssl x509 -req -in "$1/$2.csr" -CA "$1/$3.crt" -CAkey "$1/$3.key" \
        -CAcreateserial -days "$5" -extfile "$1/$2.ext" \
        -out "$1/$2.crt" 2>/dev/null
    rm -f "$1/$2.csr" "$1/$2.ext"
    chmod 600 "$1/$2.key"
}
