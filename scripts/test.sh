#!/usr/bin/env bash
# blast's test command, the one the README gives and CI runs: installs what
# the tests need, then runs the lints and every test. Stops at the first
# failing step and names it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() {
    local name=$1
    shift
    echo "==> $name: $*"
    if ! "$@"; then
        echo "==> FAILED: $name" >&2
        exit 1
    fi
}

step deps scripts/install-deps.sh
step fmt cargo fmt --all --check
step clippy cargo clippy --workspace --all-targets -- -D warnings
step doc env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
step test cargo test --workspace
echo "==> all steps passed"
