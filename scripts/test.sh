#!/usr/bin/env bash
# The one test command: installs what tests need, builds the built-in
# WebAssembly plugins, starts local services, runs every test and the gates.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed 2>/dev/null | grep -q '^wasm32-wasip2$' || rustup target add wasm32-wasip2
bash scripts/services.sh
if [ -x builtin-plugins/build.sh ]; then
  bash builtin-plugins/build.sh
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build -p oort --bin oort
OORT_BIN="$(pwd)/target/debug/oort" cargo test --workspace -- --test-threads 4
