#!/usr/bin/env bash
# Installs what blast's tests (and, with --bench, its benchmarks) need from
# Debian's packages. Idempotent: does nothing when everything is there.
#
#   scripts/install-deps.sh           # nginx and chromium, for the integration tests
#   scripts/install-deps.sh --bench   # also wrk, perf, strace, valgrind
#
# nginx is only a binary the tests start on their own ports: the system
# nginx service that Debian's package starts on port 80 is stopped and
# disabled again. chromium (headless) renders the HTML report in a test.
set -euo pipefail

bench=false
for arg in "$@"; do
    case "$arg" in
        --bench) bench=true ;;
        -h | --help)
            sed -n '2,10s/^# \{0,1\}//p' "$0"
            exit 0
            ;;
        *)
            echo "install-deps: unknown argument: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

say() { echo "install-deps: $*"; }

# Each wanted package, as "package:command it provides".
wanted=("nginx-light:nginx" "chromium:chromium")
if $bench; then
    wanted+=("wrk:wrk" "linux-perf:perf" "strace:strace" "valgrind:valgrind")
fi

# Looks in PATH and in /usr/sbin, which a non-root PATH may lack (nginx is
# there). Not `command -v`: it also reports a file that is not executable.
has_command() {
    local dir dirs
    IFS=: read -ra dirs <<<"$PATH"
    for dir in "${dirs[@]}" /usr/sbin /sbin; do
        if [ -f "$dir/$1" ] && [ -x "$dir/$1" ]; then
            return 0
        fi
    done
    return 1
}

missing=()
for entry in "${wanted[@]}"; do
    package=${entry%%:*}
    cmd=${entry#*:}
    if has_command "$cmd"; then
        say "$cmd found, $package not needed"
    else
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    say "nothing to install"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    say "need root or sudo to install: ${missing[*]}" >&2
    exit 1
fi
apt_get=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)

say "apt-get update"
"${apt_get[@]}" update -qq

# Newer Debian releases dropped the nginx-light flavour: take plain nginx.
# (apt-cache's output goes through a variable: `| grep -q` would stop
# reading early, and under pipefail the SIGPIPE would read as "missing".)
for i in "${!missing[@]}"; do
    [ "${missing[$i]}" = nginx-light ] || continue
    candidate=$(apt-cache policy nginx-light 2>/dev/null | sed -n 's/^ *Candidate: //p')
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
        say "nginx-light not available here, installing nginx instead"
        missing[i]=nginx
    fi
done

say "apt-get install ${missing[*]}"
"${apt_get[@]}" install -y -qq --no-install-recommends "${missing[@]}"

stop_system_nginx() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        if systemctl is-active --quiet nginx; then
            say "stopping the nginx service"
            "${sudo[@]}" systemctl stop nginx
        fi
        if systemctl is-enabled --quiet nginx 2>/dev/null; then
            say "disabling the nginx service"
            "${sudo[@]}" systemctl disable --quiet nginx
        fi
        return
    fi
    local pid=""
    [ -s /run/nginx.pid ] && pid=$(cat /run/nginx.pid)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        say "stopping the system nginx (pid $pid)"
        "${sudo[@]}" /usr/sbin/nginx -s stop 2>/dev/null || "${sudo[@]}" kill "$pid" || true
    fi
    if [ -x /etc/init.d/nginx ] && command -v update-rc.d >/dev/null 2>&1; then
        say "disabling the nginx init script"
        "${sudo[@]}" update-rc.d nginx disable >/dev/null 2>&1 || true
    fi
}

case " ${missing[*]} " in
    *" nginx-light "* | *" nginx "*) stop_system_nginx ;;
esac
say "done"
