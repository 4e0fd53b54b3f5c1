#!/usr/bin/env bash
# Compares this tree's blast with another build of it (a git revision), one
# core each in turn, against nginx on another core: did a change make the
# request path dearer?
#
#   scripts/bench-vs-build.sh --ref e12a2b0               # 5 pairs of 10 s runs
#   scripts/bench-vs-build.sh --ref HEAD~3 --pairs 7 --duration 15
#   scripts/bench-vs-build.sh --ref main --scenario benches/scenarios/rich.rhai
#
# The reference is built in release mode from a temporary git worktree, in
# its own target dir (TARGET/bench-ref, kept for the next run). nginx
# (`worker_processes 1`, `return 200`) is pinned to the first CPU of this
# process's affinity list, each blast (`--cores 1`, 64 users) to the second.
# The two alternate (reference first in odd pairs, this tree first in even
# ones), since the machine is shared and noisy; requests are counted by
# nginx's access log. Prints, per pair, both builds' requests/s and CPU-µs
# (user + system) per request and their ratio (this / reference), then the
# median ratio. Only 127.0.0.1 is loaded, and every run is bounded in time.
set -euo pipefail

duration=10
pairs=5
ref=""
scenario=benches/scenarios/hello.rhai
while [ $# -gt 0 ]; do
    case "$1" in
        --ref | --duration | --pairs | --scenario)
            [ $# -ge 2 ] || { echo "bench-vs-build: $1 needs a value" >&2; exit 2; }
            case "$1" in
                --ref) ref=$2 ;;
                --duration) duration=$2 ;;
                --pairs) pairs=$2 ;;
                --scenario) scenario=$2 ;;
            esac
            shift
            ;;
        -h | --help)
            sed -n '2,18s/^# \{0,1\}//p' "$0"
            exit 0
            ;;
        *)
            echo "bench-vs-build: unknown argument: $1 (try --help)" >&2
            exit 2
            ;;
    esac
    shift
done
[ -n "$ref" ] || { echo "bench-vs-build: --ref REV is required (a git revision to compare with)" >&2; exit 2; }
case "$duration" in
    '' | *[!0-9]* | 0) echo "bench-vs-build: --duration takes whole seconds > 0, not '$duration'" >&2; exit 2 ;;
esac
case "$pairs" in
    '' | *[!0-9]* | [0-4]) echo "bench-vs-build: --pairs takes a whole number ≥ 5, not '$pairs'" >&2; exit 2 ;;
esac

bench="bench-vs-build"
# shellcheck source=scripts/bench-common.sh
. "$(dirname "$0")/bench-common.sh"

[ -f "$scenario" ] || die "no scenario $scenario"
git rev-parse --verify --quiet "$ref^{commit}" >/dev/null || die "$ref is not a git revision here"
nginx=$(find_command nginx) || die "nginx is not installed (scripts/install-deps.sh installs it)"
find_command taskset >/dev/null || die "taskset is not installed"
pin_cpus nginx nginx
raise_nofile 4096 ": raise it (e.g. in /etc/security/limits.conf) or run as root"

bench_tmp blast-bench-build
worktree="$tmp/ref"
# The worktree goes with the temp dir; git forgets it then.
# cleanup exits with the status it finds in $?: keep the script's.
trap 'status=$?; git worktree remove --force "$worktree" >/dev/null 2>&1 || true; (exit $status); cleanup' EXIT

build_blast
cp "$blast" "$tmp/blast-new"
say "building the reference $ref (git worktree in $worktree)"
git worktree add --detach --quiet "$worktree" "$ref" || die "cannot check out $ref"
# A target dir of its own: cargo names a workspace's own crates' artifacts
# by their place in the workspace, so two checkouts in one target dir
# overwrite each other's. Kept between runs, so a later run builds less.
ref_target=${CARGO_TARGET_DIR:-$root/target}/bench-ref
(cd "$worktree" && CARGO_TARGET_DIR="$ref_target" cargo build --release >&2) ||
    die "cargo build --release of $ref failed"
cp "$ref_target/release/blast" "$tmp/blast-ref"

nginx_logging="log_format bench '\$request_method \$uri \$status';
    access_log \"$tmp/nginx/access.log\" bench buffer=64k flush=1s;"
start_server

log_lines() { wc -l <"$tmp/nginx/access.log"; }
# The access log's line count once nginx has flushed (within 1 s of a
# line) and nothing more arrives.
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

# measure BUILD: one run of $tmp/blast-BUILD; sets rps and us (CPU-µs per
# request, counted by nginx).
measure() {
    local build=$1 before after requests user system TIMEFORMAT='%3U %3S'
    before=$(settled_lines)
    { time timeout -k 5 $((duration + 60)) "${tool_pin[@]}" "$tmp/blast-$build" run \
        -s "$scenario" -H "http://127.0.0.1:$server_port" -u 64 -r 1000 -t "${duration}s" \
        --cores 1 --only-summary --exit-code-on-error 0 \
        >"$tmp/$build.out" 2>"$tmp/$build.err"; } 2>"$tmp/$build.time" ||
        { sed 's/^/    /' "$tmp/$build.err" >&2; die "the $build build's run failed"; }
    after=$(settled_lines)
    requests=$((after - before))
    [ "$requests" -gt 0 ] || die "$build: nginx logged no request"
    read -r user system <"$tmp/$build.time"
    rps=$(div "$requests" "$duration" 0)
    us=$(awk -v u="$user" -v s="$system" -v n="$requests" 'BEGIN { printf "%.2f\n", (u + s) * 1e6 / n }')
}

say "$placement; $pairs pairs of ${duration} s runs of $scenario"
printf '%-5s %12s %12s %12s %12s %8s\n' pair "ref req/s" "new req/s" "ref µs/req" "new µs/req" "new/ref"
ratios=()
for pair in $(seq "$pairs"); do
    if [ $((pair % 2)) -eq 1 ]; then order=(ref new); else order=(new ref); fi
    for build in "${order[@]}"; do
        measure "$build"
        declare "rps_$build=$rps" "us_$build=$us"
    done
    ratio=$(div "$us_new" "$us_ref" 3)
    ratios+=("$ratio")
    printf '%-5s %12s %12s %12s %12s %8s\n' "$pair" "$rps_ref" "$rps_new" "$us_ref" "$us_new" "$ratio"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ a[NR] = $1 } END {
    if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
echo "median CPU per request, this tree / $ref: $median"
