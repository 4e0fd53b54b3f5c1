# shellcheck shell=bash
# Variables set here are read by the scripts that source this file.
# shellcheck disable=SC2034
#
# What the benchmark scripts share; sourced (not run) by scripts/bench-*.sh
# after `set -euo pipefail`, with $bench set to the script's name for its
# messages. On sourcing it moves to the repository's root; the rest are
# functions the scripts call in their own order:
#
#   build_blast           cargo build --release; sets $blast
#   find_command NAME     the path of NAME, /usr/sbin and /sbin included
#   pin_cpus LABEL NAME   sets server_pin, tool_pin (taskset prefixes) and
#                         $placement, naming the target LABEL there and
#                         NAME ($server_name) in messages
#   raise_nofile N HINT   the open-file limit to N, or die with HINT
#   bench_tmp PREFIX      a temp dir PREFIX.XXXXXX in $tmp, removed (with the
#                         server and the tool stopped) on exit, Ctrl-C or TERM
#   start_server          nginx ($nginx set) or `blast target` on a free
#                         port of 127.0.0.1, pinned; sets $server_port
#   stop_server, listening PORT, div A B DIGITS

bench=${bench:?set bench to the name of the script before sourcing bench-common.sh}

say() { echo "$bench: $*" >&2; }
die() {
    echo "$bench: error: $*" >&2
    exit 1
}

# A relative CARGO_TARGET_DIR is the caller's, from the caller's directory.
if [ -n "${CARGO_TARGET_DIR:-}" ] && [ "${CARGO_TARGET_DIR#/}" = "$CARGO_TARGET_DIR" ]; then
    export CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR"
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

# ---------------------------------------------------------------- tools ---

build_blast() {
    say "building blast (cargo build --release)"
    cargo build --release >&2 || die "cargo build --release failed"
    blast="${CARGO_TARGET_DIR:-$root/target}/release/blast"
    [ -x "$blast" ] || die "no blast binary at $blast after the build"
}

# Like install-deps.sh: /usr/sbin may be missing from a non-root PATH.
find_command() {
    local dir dirs
    IFS=: read -ra dirs <<<"$PATH"
    for dir in "${dirs[@]}" /usr/sbin /sbin /usr/local/sbin; do
        if [ -f "$dir/$1" ] && [ -x "$dir/$1" ]; then
            echo "$dir/$1"
            return 0
        fi
    done
    return 1
}

# ----------------------------------------------------------------- CPUs ---

# This process's CPUs, e.g. "0-3,6" -> "0 1 2 3 6".
allowed_cpus() {
    local list part parts
    list=$(taskset -pc $$ | sed 's/.*: *//')
    IFS=, read -ra parts <<<"$list"
    for part in "${parts[@]}"; do
        if [ "${part#*-}" != "$part" ]; then
            seq "${part%-*}" "${part#*-}"
        else
            echo "$part"
        fi
    done
}

# pin_cpus LABEL NAME: the target on the first CPU of this process's
# affinity list, the load tool on the second. The target is LABEL in
# $placement, NAME ($server_name) in the messages here and start_server's.
pin_cpus() {
    local label=$1 cpus
    server_name=$2
    read -ra cpus <<<"$(allowed_cpus | tr '\n' ' ')"
    if [ ${#cpus[@]} -ge 2 ]; then
        server_pin=(taskset -c "${cpus[0]}")
        tool_pin=(taskset -c "${cpus[1]}")
        placement="$label on CPU ${cpus[0]}, the tool on CPU ${cpus[1]}"
    else
        server_pin=()
        tool_pin=()
        placement="only 1 CPU: $label and the tool share it, unpinned"
        say "this machine has only 1 CPU: running unpinned, so the tool competes with $server_name"
    fi
}

# ---------------------------------------------------- descriptor limits ---

# raise_nofile N HINT: at least N open files (root may raise the hard limit
# too), else die with HINT after the limit.
raise_nofile() {
    nofile=$1
    if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$nofile" ]; then
        ulimit -Sn "$nofile" 2>/dev/null || ulimit -n "$nofile" 2>/dev/null ||
            die "need $nofile open files, but the hard limit (ulimit -Hn) is $(ulimit -Hn)${2:-}"
    fi
}

# --------------------------------------------------------------- target ---

server_pid=""
tool_pid=""

# bench_tmp PREFIX: a temp dir in $tmp; the traps that clean it up.
bench_tmp() {
    tmp=$(mktemp -d -t "$1.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

stop_server() {
    [ -n "$server_pid" ] || return 0
    local pid=$server_pid i workers
    server_pid=""
    kill -0 "$pid" 2>/dev/null || return 0
    workers=$(pgrep -P "$pid" || true)
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    # nginx workers outlive a SIGKILLed master: kill them by pid too.
    if kill -0 "$pid" 2>/dev/null; then
        for i in $workers; do kill -KILL "$i" 2>/dev/null || true; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    if [ -n "$tool_pid" ] && kill -0 "$tool_pid" 2>/dev/null; then
        kill -KILL "$tool_pid" 2>/dev/null || true
    fi
    stop_server
    rm -rf "$tmp"
    exit "$status"
}

# Without it, a root master runs its worker as `nobody`, who cannot read
# the 0700 temp dir.
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root;"

# What nginx logs, in its http block: nothing unless a script says so.
nginx_logging="access_log off;"

write_nginx_conf() {
    local port=$1 p=$tmp/nginx
    cat >"$p/nginx.conf" <<EOF
# Written by scripts/$bench.sh for one run; deleted with it.
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $nofile;
$user_line
error_log "$p/error.log";
pid "$p/nginx.pid";
lock_file "$p/nginx.lock";

events {
    worker_connections $((nofile - 100));
}

http {
    default_type text/plain;
    $nginx_logging
    client_body_temp_path "$p/client_body_temp";
    proxy_temp_path "$p/proxy_temp";
    fastcgi_temp_path "$p/fastcgi_temp";
    uwsgi_temp_path "$p/uwsgi_temp";
    scgi_temp_path "$p/scgi_temp";
    keepalive_requests 1000000;
    keepalive_timeout 300s;

    server {
        listen 127.0.0.1:$port;
        location / {
            return 200 "hello\n";
        }
    }
}
EOF
}

# True when something accepts connections on 127.0.0.1:$1.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts nginx ($nginx) or, without it, `blast target` on a free port,
# pinned to the target's CPU; sets server_port.
start_server() {
    local attempt port i ready
    mkdir -p "$tmp/nginx"
    for attempt in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 40000))
        listening "$port" && continue
        rm -f "$tmp/nginx/error.log" "$tmp/nginx/nginx.pid" "$tmp/server.err"
        if [ -n "$nginx" ]; then
            write_nginx_conf "$port"
            "${server_pin[@]}" "$nginx" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
                -e "$tmp/nginx/error.log" </dev/null >"$tmp/server.err" 2>&1 &
        else
            "${server_pin[@]}" "$blast" target --bind 127.0.0.1 --port "$port" --threads 1 \
                </dev/null >"$tmp/server.err" 2>&1 &
        fi
        server_pid=$!
        for i in $(seq 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            ready=false
            if [ -n "$nginx" ]; then
                # nginx writes its pid file once it has bound the port: a
                # pid file naming our child means the port is ours.
                [ "$(cat "$tmp/nginx/nginx.pid" 2>/dev/null || true)" = "$server_pid" ] && ready=true
            else
                ready=true
            fi
            if $ready && listening "$port"; then
                server_port=$port
                return 0
            fi
            sleep 0.1
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            stop_server
            die "$server_name did not listen on 127.0.0.1:$port within 10 s: $(cat "$tmp/nginx/error.log" "$tmp/server.err" 2>/dev/null)"
        fi
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
        grep -qi "address already in use" "$tmp/nginx/error.log" "$tmp/server.err" 2>/dev/null ||
            die "$server_name failed to start: $(cat "$tmp/nginx/error.log" "$tmp/server.err" 2>/dev/null)"
    done
    die "found no free port for $server_name in 5 attempts"
}

# --------------------------------------------------------------- maths ---

# div A B DIGITS: A/B, or "n/a" when B is 0 or either is missing.
div() {
    awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN {
        if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) { print "n/a"; exit }
        printf "%.*f\n", d, a / b }'
}
