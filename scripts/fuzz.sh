#!/usr/bin/env bash
# Smoke run of every fuzz target in fuzz/ (RUNS inputs each, default 20000),
# starting from the seed corpora in fuzz/seeds (taken from the tests). Found
# inputs go to fuzz/corpus (not committed); a crash stops the script with the
# input in fuzz/artifacts/<target>/.
#   RUNS=10000000 bash scripts/fuzz.sh sql     # a long run of one target
# cargo-fuzz is installed from crates.io when missing; RUSTC_BOOTSTRAP lets
# the stable toolchain build with the sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
RUNS="${RUNS:-20000}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sql rule_json import_doc sink_props)
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== fuzz $t: $RUNS runs"
    cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -runs="$RUNS" -max_len=16384 -rss_limit_mb=2048 -timeout=10
done
