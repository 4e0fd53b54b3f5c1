#!/usr/bin/env bash
# The open model on one core: the highest arrival rate one blast shard
# sustains with a 1-request iteration, and its generator lateness there.
#
#   scripts/bench-open-model.sh                 # 8 s per step, about 2 minutes
#   scripts/bench-open-model.sh --duration 15   # longer steps
#   scripts/bench-open-model.sh --quick         # fewer steps, about 1 minute
#
# The target (nginx, `worker_processes 1`, `return 200`; blast's built-in
# target when nginx is missing) is pinned to the first CPU of this
# process's affinity list and the load tool to the second. The reference
# is the closed-model ceiling of that core: wrk -t1 -c64 for the same
# duration (when wrk is missing, it says so and uses blast's closed model,
# -u 50 -r 1000, instead). Then `blast run --rate R/s --cores 1
# --max-users 200` with benches/scenarios/hello.rhai (one GET per
# iteration) steps R through 5, 10, 25, 50, 75, 90, 100 and 110% of that
# ceiling (--quick: 10, 50, 90, 110),
# stops at the first rate not sustained (completed < 99% of R x duration,
# or any dropped) and refines twice between the last sustained and the
# first failed rate. Prints per rate: achieved/s, dropped, shard busy and
# the lateness percentiles; then the highest sustained rate, its ratio to
# the ceiling, and PASS when lateness p99 < 1 ms at every rate whose busy
# ratio is < 0.9 (exit 0), else FAIL (exit 1). Only 127.0.0.1 is loaded,
# and every run is bounded in time.
set -euo pipefail

duration=8
quick=false
max_users=200
while [ $# -gt 0 ]; do
    case "$1" in
        --duration)
            [ $# -ge 2 ] || { echo "bench-open-model: --duration needs a value" >&2; exit 2; }
            duration=$2
            shift
            ;;
        --duration=*) duration=${1#*=} ;;
        --quick) quick=true ;;
        -h | --help)
            sed -n '2,25s/^# \{0,1\}//p' "$0"
            exit 0
            ;;
        *)
            echo "bench-open-model: unknown argument: $1 (try --help)" >&2
            exit 2
            ;;
    esac
    shift
done
case "$duration" in
    '' | *[!0-9]* | 0) echo "bench-open-model: --duration takes whole seconds > 0, not '$duration'" >&2; exit 2 ;;
esac

bench="bench-open-model"
# shellcheck source=scripts/bench-common.sh
. "$(dirname "$0")/bench-common.sh"

# ---------------------------------------------------------------- tools ---

build_blast
need() { find_command "$1" || die "$1 is not installed"; }
need taskset >/dev/null
need timeout >/dev/null
need jq >/dev/null
nginx=$(find_command nginx || true)
wrk=$(find_command wrk || true)
[ -n "$wrk" ] || say "wrk is not installed (scripts/install-deps.sh --bench installs it): the reference is blast's closed model (-u 50 -r 1000) instead"
[ -n "$nginx" ] || say "nginx is not installed: the target is blast's built-in one (blast target)"

pin_cpus target "the target"
raise_nofile 4096
bench_tmp blast-open

# --------------------------------------------------------------- maths ---

# pct_of CEILING PERCENT: the rate, rounded to 100/s.
pct_of() { awk -v c="$1" -v p="$2" 'BEGIN { r = int(c * p / 100 / 100 + 0.5) * 100; if (r < 100) r = 100; print r }'; }

# ------------------------------------------------------------- the runs ---

run_bound=$((duration + 30))

# bounded NAME COMMAND...: runs COMMAND on the tool's CPU, at most
# $run_bound s, output in $tmp/NAME.{out,err}.
bounded() {
    local name=$1 rc=0
    shift
    timeout -k 5 "$run_bound" "${tool_pin[@]}" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && say "$name: killed after $run_bound s"
        sed 's/^/    /' "$tmp/$name.out" "$tmp/$name.err" >&2
        die "$name failed (exit $rc): $*"
    fi
}

url="http://127.0.0.1:PORT"

reference() {
    if [ -n "$wrk" ]; then
        ref_cmd="wrk -t1 -c64 -d${duration}s $url/"
        say "reference: $ref_cmd"
        bounded wrk "$wrk" -t1 -c64 "-d${duration}s" "http://127.0.0.1:$server_port/"
        ref_rps=$(awk '/^Requests\/sec:/ { printf "%.0f\n", $2 }' "$tmp/wrk.out")
        [ -n "$ref_rps" ] || die "no Requests/sec in wrk's output: $(cat "$tmp/wrk.out")"
        ref_name="wrk -t1 -c64"
    else
        ref_cmd="blast run -s benches/scenarios/hello.rhai -H $url -u 50 -r 1000 -t ${duration}s --cores 1"
        say "reference: $ref_cmd"
        bounded closed "$blast" run -s benches/scenarios/hello.rhai -H "http://127.0.0.1:$server_port" \
            -u 50 -r 1000 -t "${duration}s" --cores 1 --only-summary --json "$tmp/closed.json"
        ref_rps=$(jq -r '.total.requests / .duration_s | floor' "$tmp/closed.json")
        ref_name="blast closed model -u 50"
    fi
    [ "$ref_rps" -gt 0 ] 2>/dev/null || die "the reference measured $ref_rps requests/s"
}

declare -a tried=()
declare -A achieved dropped busy lp50 lp99 lp999 lmax ok p99_ms p99u_ms

# open_run RATE: one open-model step; sets ok[RATE] to yes/no.
open_run() {
    local rate=$1 json=$tmp/open-$1.json completed
    say "open model at $rate/s for ${duration} s"
    bounded "open-$rate" "$blast" run -s benches/scenarios/hello.rhai -H "http://127.0.0.1:$server_port" \
        --rate "$rate/s" -t "${duration}s" --cores 1 --max-users "$max_users" --only-summary --json "$json"
    tried+=("$rate")
    completed=$(jq -r '.iterations.completed' "$json")
    dropped[$rate]=$(jq -r '.iterations.dropped' "$json")
    achieved[$rate]=$(div "$completed" "$(jq -r '.duration_s' "$json")" 0)
    busy[$rate]=$(jq -r '.health.max_busy | . * 100 | round / 100' "$json")
    lp50[$rate]=$(jq -r '.health.lateness_ms.p50 // "n/a"' "$json")
    lp99[$rate]=$(jq -r '.health.lateness_ms.p99 // "n/a"' "$json")
    lp999[$rate]=$(jq -r '.health.lateness_ms."p99.9" // "n/a"' "$json")
    lmax[$rate]=$(jq -r '.health.lateness_ms.max // "n/a"' "$json")
    p99_ms[$rate]=$(jq -r '.total.percentiles_ms."99" // "n/a"' "$json")
    p99u_ms[$rate]=$(jq -r '.total.uncorrected.percentiles_ms."99" // "n/a"' "$json")
    if awk -v c="$completed" -v r="$rate" -v d="$duration" -v x="${dropped[$rate]}" \
        'BEGIN { exit !(c >= 0.99 * r * d && x == 0) }'; then
        ok[$rate]=yes
    else
        ok[$rate]=no
    fi
}

start_server
say "target listening on 127.0.0.1:$server_port ($placement)"
reference
say "reference ceiling: $ref_rps requests/s ($ref_name)"

if $quick; then
    ladder=(10 50 90 110)
    refine=1
else
    # The low steps make sure some rate runs below saturation, where the
    # lateness criterion is judged.
    ladder=(5 10 25 50 75 90 100 110)
    refine=2
fi
best=0
fail=""
for p in "${ladder[@]}"; do
    rate=$(pct_of "$ref_rps" "$p")
    [ -n "${ok[$rate]:-}" ] && continue
    open_run "$rate"
    if [ "${ok[$rate]}" = yes ]; then
        best=$rate
    else
        fail=$rate
        break
    fi
done
# Bisect between the highest sustained rate and the first that was not.
if [ -n "$fail" ]; then
    for _ in $(seq "$refine"); do
        rate=$(awk -v a="$best" -v b="$fail" 'BEGIN { print int((a + b) / 2 / 100 + 0.5) * 100 }')
        [ "$rate" -gt "$best" ] && [ "$rate" -lt "$fail" ] || break
        open_run "$rate"
        if [ "${ok[$rate]}" = yes ]; then best=$rate; else fail=$rate; fi
    done
fi

# ------------------------------------------------------------- report ---

echo
echo "blast's open model on one core: benches/scenarios/hello.rhai (one GET per iteration)"
echo "  target: $([ -n "$nginx" ] && echo "nginx (worker_processes 1, return 200)" || echo "blast target --threads 1") on 127.0.0.1; $placement"
echo "  reference: $ref_cmd"
echo "  each step: blast run -s benches/scenarios/hello.rhai -H $url --rate R/s -t ${duration}s --cores 1 --max-users $max_users"
echo "  sustained: completed >= 99% of R x ${duration} s and 0 dropped; busy = health.max_busy; lateness = health.lateness_ms"
echo
printf '%9s %6s %10s %8s %6s %9s %9s %9s %9s %9s %9s %10s\n' \
    rate "x ref" achieved/s dropped busy "late p50" "late p99" "p99.9" "max" "resp p99" "uncorr" sustained
mapfile -t sorted < <(printf '%s\n' "${tried[@]}" | sort -n)
for r in "${sorted[@]}"; do
    printf '%9s %6s %10s %8s %6s %9s %9s %9s %9s %9s %9s %10s\n' "$r/s" "$(div "$r" "$ref_rps" 2)" \
        "${achieved[$r]}" "${dropped[$r]}" "${busy[$r]}" "${lp50[$r]}" "${lp99[$r]}" "${lp999[$r]}" "${lmax[$r]}" \
        "${p99_ms[$r]}" "${p99u_ms[$r]}" "${ok[$r]}"
done
echo "  (lateness and response-time p99s in ms; resp p99 is corrected for coordinated omission, uncorr is not)"
echo
echo "reference ceiling ($ref_name): $ref_rps requests/s"
if [ "$best" -gt 0 ]; then
    echo "highest sustained rate: $best/s = $(div "$best" "$ref_rps" 2)x the reference ceiling"
    echo "  at $best/s: lateness p99 ${lp99[$best]} ms, p99.9 ${lp999[$best]} ms, max ${lmax[$best]} ms; shard busy ${busy[$best]}"
else
    echo "highest sustained rate: none of the rates tried was sustained"
fi
[ -z "$fail" ] && echo "  (every rate tried was sustained: the ceiling may be higher than the highest step)"

# The criterion: lateness p99 < 1 ms wherever the shard is below saturation.
below=0
bad=""
for r in "${sorted[@]}"; do
    if awk -v b="${busy[$r]}" 'BEGIN { exit !(b < 0.9) }'; then
        below=$((below + 1))
        awk -v l="${lp99[$r]}" 'BEGIN { exit !(l != "n/a" && l < 1) }' || bad="$bad $r/s (p99 ${lp99[$r]} ms)"
    fi
done
if [ "$below" -eq 0 ]; then
    echo "lateness p99 < 1 ms wherever busy < 0.9: FAIL (no rate ran below saturation, so nothing was judged)"
    exit 1
elif [ -n "$bad" ]; then
    echo "lateness p99 < 1 ms wherever busy < 0.9: FAIL at$bad"
    exit 1
else
    echo "lateness p99 < 1 ms wherever busy < 0.9: PASS ($below of ${#sorted[@]} rates below saturation)"
fi
