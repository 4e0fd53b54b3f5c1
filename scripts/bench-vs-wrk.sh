#!/usr/bin/env bash
# Compares blast with wrk, one core each, against nginx on another core.
#
#   scripts/bench-vs-wrk.sh                 # 10 s runs of each tool
#   scripts/bench-vs-wrk.sh --duration 30   # longer runs
#   scripts/bench-vs-wrk.sh --idle          # memory per idle user instead
#
# nginx (`worker_processes 1`, `return 200`) is pinned to the first CPU of
# this process's affinity list; wrk (-t1 -c64) and `blast run --cores 1`
# (64 users, benches/scenarios/hello.rhai) each to the second, in turn.
# Requests are counted by nginx's access log, not by either tool. Prints
# requests/s, instructions, CPU-µs and syscalls per request, and the
# ratios blast/wrk (target: blast <= 1.25x wrk's instructions per request).
#
# --idle runs blast with benches/scenarios/idle.rhai (one GET, then 30 s of
# wait) with 10,000 users and with 1, samples its RSS 10 s after start, and
# prints KiB per idle user (target: <= 16 KiB).
#
# Installs wrk, perf, strace and valgrind (scripts/install-deps.sh --bench)
# and builds blast in release mode first. Only 127.0.0.1 is loaded, and
# every run is bounded in time.
set -euo pipefail

duration=10
idle=false
idle_users=10000
while [ $# -gt 0 ]; do
    case "$1" in
        --duration)
            [ $# -ge 2 ] || { echo "bench-vs-wrk: --duration needs a value" >&2; exit 2; }
            duration=$2
            shift
            ;;
        --duration=*) duration=${1#*=} ;;
        --idle) idle=true ;;
        -h | --help)
            sed -n '2,21s/^# \{0,1\}//p' "$0"
            exit 0
            ;;
        *)
            echo "bench-vs-wrk: unknown argument: $1 (try --help)" >&2
            exit 2
            ;;
    esac
    shift
done
case "$duration" in
    '' | *[!0-9]* | 0) echo "bench-vs-wrk: --duration takes whole seconds > 0, not '$duration'" >&2; exit 2 ;;
esac

bench="bench-vs-wrk"
# shellcheck source=scripts/bench-common.sh
. "$(dirname "$0")/bench-common.sh"

# ---------------------------------------------------------------- tools ---

say "installing what the benchmark needs (scripts/install-deps.sh --bench)"
scripts/install-deps.sh --bench >&2 || die "scripts/install-deps.sh --bench failed"
build_blast
need() { find_command "$1" || die "$1 is not installed (scripts/install-deps.sh --bench should have installed it)"; }
nginx=$(need nginx)
need taskset >/dev/null
need timeout >/dev/null
if $idle; then
    need ss >/dev/null
else
    wrk=$(need wrk)
    need strace >/dev/null
fi

pin_cpus nginx nginx

# An idle user holds a keep-alive connection: blast and nginx each need a
# descriptor per user, plus some.
if $idle; then
    raise_nofile $((idle_users + 1024)) ": raise it (e.g. in /etc/security/limits.conf) or run as root"
else
    raise_nofile 4096 ": raise it (e.g. in /etc/security/limits.conf) or run as root"
fi

# ---------------------------------------------------------------- nginx ---

bench_tmp blast-bench
# Buffered: a write per request would slow nginx for both tools alike, but
# it is not what is measured. Lines are counted once flushed.
nginx_logging="log_format bench '\$request_method \$uri \$status';
    access_log \"$tmp/nginx/access.log\" bench buffer=64k flush=1s;"

log_lines() { wc -l <"$tmp/nginx/access.log"; }

# The access log's line count once nginx has flushed its buffer (within
# 1 s of a line) and nothing more arrives.
settled_lines() {
    local before after i
    after=$(log_lines)
    for i in $(seq 30); do
        before=$after
        sleep 1.2
        after=$(log_lines)
        if [ "$after" = "$before" ]; then
            echo "$after"
            return 0
        fi
    done
    die "nginx's access log still grows 36 s after a run: is another client loading it?"
}

# --------------------------------------------------------------- maths ---

sum() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a + b }'; }
# per_request_us SECONDS REQUESTS: microseconds per request.
per_request_us() { div "$(awk -v s="$1" 'BEGIN { print s * 1000000 }')" "$2" 2; }

# ------------------------------------------------------------ the runs ---

# tool_cmd TOOL SECONDS: sets cmd to TOOL's command line for a run of
# SECONDS.
tool_cmd() {
    local tool=$1 secs=$2
    case "$tool" in
        wrk) cmd=("$wrk" -t1 -c64 "-d${secs}s" "http://127.0.0.1:$server_port/") ;;
        blast) cmd=("$blast" run -s benches/scenarios/hello.rhai -H "http://127.0.0.1:$server_port"
            -u 64 -r 1000 -t "${secs}s" --cores 1 --only-summary) ;;
    esac
}

# timed_run NAME -- COMMAND...: runs COMMAND pinned to the tool's CPU,
# bounded by $run_bound seconds, with its output in $tmp/NAME.{out,err};
# sets run_requests (counted by nginx), run_user and run_system (CPU
# seconds) and run_cpu (their sum).
# Fails the script when COMMAND fails, unless $may_fail is true: then it
# sets run_rc and returns.
may_fail=false
timed_run() {
    local name=$1 before after rc=0 user system TIMEFORMAT='%3U %3S'
    shift 2
    before=$(settled_lines)
    { time timeout -k 5 "$run_bound" "${tool_pin[@]}" "$@" \
        >"$tmp/$name.out" 2>"$tmp/$name.err"; } 2>"$tmp/$name.time" || rc=$?
    run_rc=$rc
    if [ "$rc" -ne 0 ]; then
        $may_fail && return 0
        [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && say "$name: killed after $run_bound s"
        sed 's/^/    /' "$tmp/$name.out" "$tmp/$name.err" >&2
        die "$name failed (exit $rc): $*"
    fi
    after=$(settled_lines)
    run_requests=$((after - before))
    [ "$run_requests" -gt 0 ] || die "$name: nginx logged no request"
    read -r user system <"$tmp/$name.time"
    run_user=$user run_system=$system
    run_cpu=$(sum "$user" "$system")
}

# The instruction counter: perf when this machine has a PMU, else callgrind.
perf_works=false
if perf_bin=$(find_command perf); then
    probe=$("$perf_bin" stat -x, -e instructions:u -- true 2>&1 || true)
    case "$probe" in
        *"<not supported>"* | *"<not counted>"* | *rror* | "") ;;
        *instructions*) perf_works=true ;;
    esac
fi

main_bench() {
    local tool secs
    run_bound=$((duration + 60))
    declare -gA rps cpu_us user_us system_us instr instr_u instr_k syscalls requests claim
    for tool in wrk blast; do
        tool_cmd "$tool" "$duration"
        if [ "$tool" = blast ]; then
            cmd+=(--json "$tmp/blast.json")
        fi
        say "$tool: ${duration} s run: ${cmd[*]}"
        if $perf_works; then
            timed_run "$tool" -- "$perf_bin" stat -x, -o "$tmp/$tool.perf" \
                -e instructions:u,instructions:k -- "${cmd[@]}"
            instr_u[$tool]=$(div "$(awk -F, '$3 ~ /^instructions:u/ { print $1 }' "$tmp/$tool.perf")" "$run_requests" 0)
            instr_k[$tool]=$(div "$(awk -F, '$3 ~ /^instructions:k/ { print $1 }' "$tmp/$tool.perf")" "$run_requests" 0)
            instr[$tool]=$(awk -v u="${instr_u[$tool]}" -v k="${instr_k[$tool]}" \
                'BEGIN { if (u == "n/a" || k == "n/a") print "n/a"; else print u + k }')
        else
            timed_run "$tool" -- "${cmd[@]}"
        fi
        requests[$tool]=$run_requests
        rps[$tool]=$(div "$run_requests" "$duration" 0)
        cpu_us[$tool]=$(per_request_us "$run_cpu" "$run_requests")
        user_us[$tool]=$(per_request_us "$run_user" "$run_requests")
        system_us[$tool]=$(per_request_us "$run_system" "$run_requests")
        case "$tool" in
            wrk) claim[$tool]=$(awk '/requests in/ { print $1 }' "$tmp/wrk.out") ;;
            blast) claim[$tool]=$(jq -r '.total.requests' "$tmp/blast.json" 2>/dev/null || echo "?") ;;
        esac
    done

    run_bound=$((duration + 60))
    for tool in wrk blast; do
        tool_cmd "$tool" "$duration"
        say "$tool: ${duration} s run under strace -c"
        timed_run "$tool-strace" -- strace -f -c -S calls -o "$tmp/$tool.strace" -- "${cmd[@]}"
        local total
        total=$(awk '$NF == "total" { print $4 }' "$tmp/$tool.strace")
        syscalls[$tool]=$(div "$total" "$run_requests" 2)
        strace_requests[$tool]=$run_requests
    done

    if ! $perf_works; then
        need valgrind >/dev/null
        # Callgrind counts user-space instructions only, about 50x slower
        # than native. Start-up (blast compiles its scenario; both connect)
        # would weigh on a short run, so the count per request is the
        # difference between a 1 s and a 4 s run.
        local short=1 long=4 name n n_short n_long r_short r_long
        for tool in wrk blast; do
            for secs in $short $long; do
                tool_cmd "$tool" "$secs"
                name="$tool-callgrind-$secs"
                run_bound=$((60 + 30 * secs))
                say "$tool: ${secs} s run under callgrind (at most $run_bound s)"
                may_fail=true
                timed_run "$name" -- valgrind --tool=callgrind \
                    --callgrind-out-file="$tmp/$name.cg" --log-file="$tmp/$name.vg" "${cmd[@]}"
                may_fail=false
                if [ "$run_rc" -ne 0 ]; then
                    # Valgrind runs one thread at a time and, up to at least
                    # 3.19, keeps its lock while a thread waits in
                    # io_uring_enter: a glommio shard parked there stops
                    # every other thread of blast.
                    cg_failure[$tool]="$tool did not finish a ${secs} s run under $(valgrind --version) within $run_bound s (exit $run_rc)"
                    say "${cg_failure[$tool]}"
                    settled_lines >/dev/null
                    break
                fi
                n=$(sed -n 's/.*Collected : *\([0-9]*\).*/\1/p' "$tmp/$name.vg")
                [ -n "$n" ] || die "$name: no instruction count in callgrind's log: $(cat "$tmp/$name.vg")"
                if [ "$secs" = "$short" ]; then
                    n_short=$n r_short=$run_requests
                else
                    n_long=$n r_long=$run_requests
                fi
            done
            if [ -n "${cg_failure[$tool]:-}" ]; then
                instr_u[$tool]=n/a
            else
                instr_u[$tool]=$(div "$((n_long - n_short))" "$((r_long - r_short))" 0)
                cg_detail[$tool]="$n_short instructions / $r_short requests in ${short} s, $n_long / $r_long in ${long} s"
            fi
            instr[$tool]=${instr_u[$tool]}
        done
    fi

    print_main_report
    if [ ${#cg_failure[@]} -gt 0 ]; then
        die "instructions per request could not be measured for: ${!cg_failure[*]} (see above)"
    fi
}

# Set empty: under `set -u`, ${#a[@]} of an array never assigned is unbound.
declare -A cg_detail=() cg_failure=() strace_requests=()

row() { printf '%-36s %14s %14s %10s\n' "$1" "$2" "$3" "$4"; }
ratio_row() { row "$1" "$2" "$3" "$(div "$3" "$2" 2)"; }

# Syscalls of one tool with the most calls, per request.
top_syscalls() {
    local tool=$1
    awk -v n="${strace_requests[$tool]}" '
        /^-/ { dashes++; next }
        dashes == 1 && NF >= 5 && shown < 6 {
            printf "    %-20s %8.3f per request\n", $NF, $4 / n; shown++ }' "$tmp/$tool.strace"
}

print_main_report() {
    echo
    echo "blast vs wrk against nginx (worker_processes 1, return 200) on 127.0.0.1"
    echo "  $placement; ${duration} s per run; requests counted by nginx's access log"
    echo "  wrk:   ${wrk} -t1 -c64 -d${duration}s http://127.0.0.1:PORT/"
    echo "  blast: ${blast#"$root"/} run -s benches/scenarios/hello.rhai -H http://127.0.0.1:PORT -u 64 -r 1000 -t ${duration}s --cores 1 --only-summary"
    echo
    row metric wrk blast blast/wrk
    row "------" "---" "-----" "---------"
    ratio_row "requests (nginx)" "${requests[wrk]}" "${requests[blast]}"
    ratio_row "requests/s" "${rps[wrk]}" "${rps[blast]}"
    if $perf_works; then
        ratio_row "instructions/request (user+kernel)" "${instr[wrk]}" "${instr[blast]}"
        ratio_row "  user" "${instr_u[wrk]}" "${instr_u[blast]}"
        ratio_row "  kernel" "${instr_k[wrk]}" "${instr_k[blast]}"
    else
        ratio_row "instructions/request (user only)" "${instr[wrk]}" "${instr[blast]}"
    fi
    ratio_row "CPU-µs/request (user+system)" "${cpu_us[wrk]}" "${cpu_us[blast]}"
    ratio_row "  user" "${user_us[wrk]}" "${user_us[blast]}"
    ratio_row "  system" "${system_us[wrk]}" "${system_us[blast]}"
    ratio_row "syscalls/request" "${syscalls[wrk]}" "${syscalls[blast]}"
    echo
    echo "each tool's own count of its ${duration} s run: wrk ${claim[wrk]:-?}, blast ${claim[blast]:-?} (nginx: ${requests[wrk]}, ${requests[blast]})"
    if $perf_works; then
        echo "instructions: perf stat -e instructions:u,instructions:k over the ${duration} s runs, start-up included"
    else
        echo "instructions: perf has no hardware counters here (perf stat says <not supported>), so they"
        echo "  were counted by valgrind --tool=callgrind: USER-SPACE INSTRUCTIONS ONLY, the kernel's"
        echo "  (sockets, syscalls, io_uring) are NOT measured. Per request = the difference between a"
        echo "  1 s and a 4 s run under callgrind, so start-up cancels out."
        for tool in wrk blast; do
            if [ -n "${cg_failure[$tool]:-}" ]; then
                echo "  $tool: NOT MEASURED: ${cg_failure[$tool]}"
            else
                echo "  $tool: ${cg_detail[$tool]}"
            fi
        done
        if [ -n "${cg_failure[blast]:-}" ]; then
            echo "  (valgrind runs one thread at a time and, up to at least 3.19, keeps its lock while a"
            echo "  thread waits in io_uring_enter: blast's shard parks there, so its other threads never"
            echo "  run; see glommio issue #582. CPU-µs/request is the comparison left on this machine.)"
        fi
    fi
    echo "CPU-µs: user+system time of the tool's process over the ${duration} s run, per request."
    echo "syscalls: strace -f -c over another ${duration} s run (requests: wrk ${strace_requests[wrk]}, blast ${strace_requests[blast]});"
    echo "  operations blast submits through io_uring are not syscalls: only io_uring_enter shows."
    local verdict
    verdict=$(awk -v r="$(div "${instr[blast]}" "${instr[wrk]}" 3)" \
        'BEGIN { if (r == "n/a") print "unknown"; else if (r <= 1.25) print "met"; else print "NOT met" }')
    echo "target blast <= 1.25x wrk's instructions/request: $verdict"
    echo
    for tool in wrk blast; do
        echo "$tool's most frequent syscalls (strace -c):"
        top_syscalls "$tool"
    done
}

# ----------------------------------------------------------- idle mode ---

# Starts blast with idle.rhai and USERS users, samples its memory 10 s
# after start, and waits for it to end; sets idle_rss, idle_hwm (KiB),
# idle_requests (logged by nginx by then) and idle_conns (connections to
# nginx open then).
idle_run() {
    local users=$1 before i rc=0 name="idle-$1"
    before=$(settled_lines)
    say "blast: $users idle users, 20 s run, memory sampled at 10 s"
    "${tool_pin[@]}" "$blast" run -s benches/scenarios/idle.rhai -H "http://127.0.0.1:$server_port" \
        -u "$users" -r 10000 -t 20s --cores 1 --only-summary >"$tmp/$name.out" 2>"$tmp/$name.err" &
    tool_pid=$!
    sleep 10
    kill -0 "$tool_pid" 2>/dev/null || {
        wait "$tool_pid" || rc=$?
        tool_pid=""
        cat "$tmp/$name.out" "$tmp/$name.err" >&2
        die "blast with $users idle users ended before 10 s (exit $rc)"
    }
    idle_rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$tool_pid/status")
    idle_hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$tool_pid/status")
    idle_conns=$(ss -Htn state established "( dport = :$server_port )" | wc -l)
    idle_requests=$(($(log_lines) - before))
    # -t 20s plus the stop: idle users wake and end at once.
    for i in $(seq 300); do
        kill -0 "$tool_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$tool_pid" 2>/dev/null; then
        kill -KILL "$tool_pid" 2>/dev/null || true
        say "blast with $users idle users did not end within 30 s: killed"
    fi
    wait "$tool_pid" || rc=$?
    tool_pid=""
    if [ "$rc" -ne 0 ]; then
        cat "$tmp/$name.out" "$tmp/$name.err" >&2
        die "blast with $users idle users failed (exit $rc)"
    fi
}

idle_bench() {
    idle_run "$idle_users"
    local rss_n=$idle_rss hwm_n=$idle_hwm conns_n=$idle_conns req_n=$idle_requests
    idle_run 1
    local rss_1=$idle_rss hwm_1=$idle_hwm conns_1=$idle_conns req_1=$idle_requests
    local per_user
    per_user=$(div "$((rss_n - rss_1))" "$((idle_users - 1))" 2)
    echo
    echo "blast's memory per idle user: benches/scenarios/idle.rhai (one GET, then 30 s of wait)"
    echo "  ${blast#"$root"/} run -s benches/scenarios/idle.rhai -H http://127.0.0.1:PORT -u N -r 10000 -t 20s --cores 1 --only-summary"
    echo "  $placement; VmRSS and VmHWM from /proc/PID/status 10 s after start"
    echo
    printf '%-10s %14s %14s %18s %16s\n' users "VmRSS KiB" "VmHWM KiB" "requests (nginx)" "open conns"
    printf '%-10s %14s %14s %18s %16s\n' "$idle_users" "$rss_n" "$hwm_n" "$req_n" "$conns_n"
    printf '%-10s %14s %14s %18s %16s\n' 1 "$rss_1" "$hwm_1" "$req_1" "$conns_1"
    echo
    echo "RSS per idle user: ($rss_n - $rss_1) KiB / $((idle_users - 1)) = $per_user KiB"
    echo "  (user-space memory only: the kernel's socket buffers are not in RSS)"
    [ "$req_n" -ge "$idle_users" ] && [ "$conns_n" -ge "$idle_users" ] ||
        echo "  WARNING: at 10 s nginx had logged $req_n requests and $conns_n connections were open, not $idle_users each: not every user was idle on its connection yet"
    local verdict
    verdict=$(awk -v k="$per_user" 'BEGIN { if (k == "n/a") print "unknown"; else if (k <= 16) print "met"; else print "NOT met" }')
    echo "target <= 16 KiB per idle user: $verdict"
}

start_server
say "nginx listening on 127.0.0.1:$server_port ($placement)"
if $idle; then
    idle_bench
else
    main_bench
fi
