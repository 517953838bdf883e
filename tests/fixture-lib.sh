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
