#!/usr/bin/env bash
# blast against wrk, on the same nginx, counted by nginx.
#
#   scripts/bench-vs-wrk.sh                 # hello + rich scenarios vs wrk, then idle-user memory
#   scripts/bench-vs-wrk.sh --duration 20   # seconds per measured run (default 10)
#   scripts/bench-vs-wrk.sh --no-idle       # skip the 10,000 idle users run
#   scripts/bench-vs-wrk.sh --idle-only     # only the idle users run
#
# nginx (worker_processes 1, `return 200`) runs pinned to CPU 0; wrk -t1 -c64
# and `blast run --cores 1 -u 64` run pinned to CPU 1, one after the other,
# for the same time. Requests are counted from nginx's access log, never
# from either tool. Printed per tool: requests/s, CPU-µs per request (user +
# system time of the tool's process), syscalls per request (strace -c, a
# separate run), instructions per request (perf stat; where the machine
# has no hardware counters, callgrind, user space only, says so), and the
# ratios blast/wrk. Then RSS per idle user: 10,000 users waiting 30 s
# between tasks, minus one user, divided by 9,999.
#
# Only 127.0.0.1 is loaded; every run is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10
idle=true
compare=true
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=$2; shift ;;
        --no-idle) idle=false ;;
        --idle-only) compare=false ;;
        -h | --help) sed -n '2,18s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "bench-vs-wrk: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$duration" in '' | *[!0-9]*) echo "bench-vs-wrk: --duration takes whole seconds" >&2; exit 2 ;; esac

scripts/install-deps.sh --bench >/dev/null
cargo build --release --quiet
blast="${CARGO_TARGET_DIR:-target}/release/blast"
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

cpus=$(nproc)
if [ "$cpus" -ge 2 ]; then
    server_cpu=(taskset -c 0)
    tool_cpu=(taskset -c 1)
else
    echo "bench-vs-wrk: only one CPU: tools and nginx run unpinned, on the same CPU" >&2
    server_cpu=()
    tool_cpu=()
fi

work=$(mktemp -d -t blast-bench-XXXXXX)
nginx_pid=""
cleanup() {
    if [ -n "$nginx_pid" ]; then
        kill "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Enough descriptors for 10,000 keep-alive connections on each side.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 25000 ]; then
    ulimit -n 25000
else
    ulimit -n "$hard"
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
cat >"$work/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 25000;
$user_line
error_log "$work/error.log";
pid "$work/nginx.pid";
events { worker_connections 24000; }
http {
    log_format blast '\$request_method \$uri \$status';
    access_log "$work/access.log" blast;
    client_body_temp_path "$work/body";
    proxy_temp_path "$work/proxy";
    fastcgi_temp_path "$work/fastcgi";
    uwsgi_temp_path "$work/uwsgi";
    scgi_temp_path "$work/scgi";
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$port;
        location = / { return 200 "hello\n"; }
        location = /json { default_type application/json; return 200 '{"id":1,"name":"bench"}'; }
    }
}
EOF
"${server_cpu[@]}" "$nginx_bin" -p "$work" -c "$work/nginx.conf" &
nginx_pid=$!
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.05
done
touch "$work/access.log"
url="http://127.0.0.1:$port"

served() { wc -l <"$work/access.log"; }

# Whether perf can count instructions here (VMs often have no PMU).
perf_ok=false
if perf stat -x, -e instructions:u true 2>&1 >/dev/null | grep -qv "not supported"; then
    if perf stat -x, -e instructions:u true 2>&1 >/dev/null | grep -q "instructions"; then
        perf_ok=true
    fi
fi

# Commands, by tool, for a run of $1 seconds.
tool_cmd() {
    local tool=$1 seconds=$2
    case "$tool" in
        wrk) echo "wrk -t1 -c64 -d${seconds}s $url/" ;;
        blast) echo "$blast run -s benches/scenarios/hello.rhai -H $url -u 64 -r 100000 -t ${seconds}s --cores 1 --only-summary" ;;
        blast-rich) echo "$blast run -s benches/scenarios/rich.rhai -H $url -u 64 -r 100000 -t ${seconds}s --cores 1 --only-summary" ;;
    esac
}

declare -A rps cpu_us sys_per ins_per
measure() {
    local tool=$1 cmd
    cmd=$(tool_cmd "$tool" "$duration")
    local before after reqs
    before=$(served)
    # shellcheck disable=SC2086
    /usr/bin/time -f "%U %S" -o "$work/time.$tool" "${tool_cpu[@]}" $cmd >"$work/out.$tool" 2>&1 ||
        { echo "bench-vs-wrk: $tool failed:" >&2; cat "$work/out.$tool" >&2; exit 1; }
    sleep 0.5
    after=$(served)
    reqs=$((after - before))
    [ "$reqs" -gt 0 ] || { echo "bench-vs-wrk: $tool made no request" >&2; exit 1; }
    rps[$tool]=$(awk -v r="$reqs" -v d="$duration" 'BEGIN { printf "%.0f", r / d }')
    cpu_us[$tool]=$(awk -v r="$reqs" '{ printf "%.2f", ($1 + $2) * 1e6 / r }' "$work/time.$tool")

    # Syscalls: a separate, shorter run under strace (a count, so its
    # slowness does not matter).
    cmd=$(tool_cmd "$tool" 5)
    before=$(served)
    # shellcheck disable=SC2086
    strace -f -c -o "$work/strace.$tool" "${tool_cpu[@]}" $cmd >/dev/null 2>&1 || true
    sleep 0.5
    after=$(served)
    reqs=$((after - before))
    local calls
    calls=$(awk '$NF == "total" { print $4 }' "$work/strace.$tool")
    sys_per[$tool]=$(awk -v c="${calls:-0}" -v r="$reqs" 'BEGIN { printf "%.2f", r ? c / r : 0 }')
    cp "$work/strace.$tool" "$work/strace-kept.$tool"

    # Instructions.
    cmd=$(tool_cmd "$tool" 5)
    before=$(served)
    if $perf_ok; then
        # shellcheck disable=SC2086
        perf stat -x, -e instructions -o "$work/perf.$tool" "${tool_cpu[@]}" $cmd >/dev/null 2>&1 || true
        sleep 0.5
        reqs=$(($(served) - before))
        ins_per[$tool]=$(awk -F, -v r="$reqs" '$3 ~ /^instructions/ { printf "%.0f", $1 / r }' "$work/perf.$tool")
    else
        # shellcheck disable=SC2086
        valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.$tool" "${tool_cpu[@]}" $cmd >/dev/null 2>&1 || true
        sleep 0.5
        reqs=$(($(served) - before))
        local total
        total=$(awk '/^summary:/ { print $2 }' "$work/callgrind.$tool" 2>/dev/null || true)
        if [ -n "$total" ] && [ "$reqs" -gt 0 ]; then
            ins_per[$tool]=$(awk -v t="$total" -v r="$reqs" 'BEGIN { printf "%.0f", t / r }')
        else
            ins_per[$tool]="n/a"
        fi
    fi
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }

if $compare; then
    for tool in wrk blast blast-rich; do
        echo "bench-vs-wrk: measuring $tool (${duration}s + 5s strace + 5s instructions)..." >&2
        measure "$tool"
    done
    ins_kind="instructions/request"
    $perf_ok || ins_kind="user-space instr/request (callgrind; no PMU: kernel not counted)"
    printf '\n%-64s %14s %14s %14s %10s %10s\n' "metric (nginx-counted requests)" wrk blast blast-rich blast/wrk rich/wrk
    for metric in rps cpu_us sys_per ins_per; do
        case $metric in
            rps) label="requests/s" ;;
            cpu_us) label="CPU-µs/request (user+system)" ;;
            sys_per) label="syscalls/request (strace -c)" ;;
            ins_per) label="$ins_kind" ;;
        esac
        declare -n values=$metric
        printf '%-64s %14s %14s %14s %10s %10s\n' "$label" "${values[wrk]}" "${values[blast]}" \
            "${values[blast-rich]}" "$(ratio "${values[blast]}" "${values[wrk]}")" \
            "$(ratio "${values[blast-rich]}" "${values[wrk]}")"
    done
    echo
    echo "top syscalls of blast (hello, strace -c):"
    awk 'NR > 2 && $NF != "total" && $1 ~ /^[0-9.]+$/ { print "  " $NF, $4 }' "$work/strace-kept.blast" | head -6
    echo "top syscalls of wrk (strace -c):"
    awk 'NR > 2 && $NF != "total" && $1 ~ /^[0-9.]+$/ { print "  " $NF, $4 }' "$work/strace-kept.wrk" | head -6
fi

if $idle; then
    rss_of() {
        local users=$1
        "${tool_cpu[@]}" "$blast" run -s benches/scenarios/idle.rhai -H "$url" -u "$users" -r 10000 \
            -t 20s --cores 1 --only-summary >"$work/idle.$users" 2>&1 &
        local pid=$!
        # Every user spawned at 1 s, one request each, then 30 s of wait.
        sleep 10
        local rss
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        wait "$pid" || { echo "bench-vs-wrk: idle run with $users users failed:" >&2; tail -5 "$work/idle.$users" >&2; exit 1; }
        echo "$rss"
    }
    echo "bench-vs-wrk: measuring RSS of 1 and 10,000 idle users (2 x 20 s)..." >&2
    one=$(rss_of 1)
    many=$(rss_of 10000)
    per=$(awk -v a="$many" -v b="$one" 'BEGIN { printf "%.1f", (a - b) / 9999 }')
    echo
    echo "idle users: RSS with 1 user ${one} KiB, with 10,000 users ${many} KiB: ${per} KiB per idle user (target <= 16)"
fi
