#!/usr/bin/env bash
# Smoke run of every fuzz target in fuzz/ (RUNS inputs each, default 3000),
# starting from the seed corpora in fuzz/seeds (taken from the tests, see
# fuzz/seeds/gen.py). Found inputs go to fuzz/corpus (not committed); a crash
# stops the script with the input in fuzz/artifacts/<target>/.
#   bash scripts/fuzz.sh                        # all targets, 3000 runs each
#   RUNS=10000000 bash scripts/fuzz.sh sql      # a long run of one target
#   bash scripts/fuzz.sh --repro FILE TARGET    # replay one input (a crash)
#   bash scripts/fuzz.sh --smoke                # the test command's run: seeds
#                                               # only, fixed seed, reproducible
# Targets: sql rule_json import_doc props template zip. See docs/fuzzing.md.
# Builds are unoptimised without a sanitizer (--dev --sanitizer none: the
# fastest build, and safe Rust needs no AddressSanitizer to report a panic);
# FUZZ_BUILD="--release --sanitizer address" for an optimised ASan build.
# cargo-fuzz is installed from crates.io when missing; RUSTC_BOOTSTRAP lets
# the stable toolchain build with the unstable flags cargo-fuzz passes.
set -euo pipefail
smoke=
if [ "${1:-}" = "--smoke" ]; then
    smoke=1
    shift
fi
if [ "${1:-}" = "--repro" ]; then
    [ $# -eq 3 ] && [ -f "$2" ] || { echo "usage: $0 --repro FILE TARGET" >&2; exit 2; }
    repro=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
fi
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
read -r -a build <<<"${FUZZ_BUILD:---dev --sanitizer none}"
flags=(-max_len=16384 -rss_limit_mb=2048 -timeout=10)
all=(sql rule_json import_doc props template zip)

if [ -n "${repro:-}" ]; then
    exec cargo fuzz run "${build[@]}" "$3" "$repro" -- "${flags[@]}"
fi

RUNS="${RUNS:-3000}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
    if [ -n "$smoke" ]; then
        # A fresh corpus and a fixed seed: every machine runs the same inputs.
        corpus=$(mktemp -d)
        trap 'rm -rf "$corpus"' EXIT
        echo "== fuzz $t: $RUNS runs (smoke, seed 1)"
        cargo fuzz run "${build[@]}" "$t" "$corpus" "seeds/$t" -- \
            -runs="$RUNS" -seed=1 "${flags[@]}"
        rm -rf "$corpus"
    else
        mkdir -p "corpus/$t"
        echo "== fuzz $t: $RUNS runs"
        cargo fuzz run "${build[@]}" "$t" "corpus/$t" "seeds/$t" -- \
            -runs="$RUNS" "${flags[@]}"
    fi
done
