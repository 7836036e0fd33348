#!/usr/bin/env bash
# The one test command: installs what tests need, builds the built-in
# WebAssembly plugins, starts local services, runs the gates and every test
# (unit, golden, end-to-end against the real binary, plugin examples in
# Python/JavaScript/C, schema-driven fuzzing of the REST API) and a short run
# of each fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

# Toolchains for the example plugins are cached per machine (they take a while
# to build the first time); override with OORT_TOOLCHAINS.
export OORT_TOOLCHAINS="${OORT_TOOLCHAINS:-$HOME/.cache/oort/toolchains}"

rustup target list --installed 2>/dev/null | grep -q '^wasm32-wasip2$' || rustup target add wasm32-wasip2
bash scripts/services.sh
bash builtin-plugins/build.sh
# Python/JavaScript/C plugin toolchains: tests/tests/plugin_new.rs builds a
# project per language with them (plugin_js_http.rs a JS sink using fetch),
# as do the examples below.
bash scripts/toolchains.sh

cargo fmt --all --check
# Unit tests of the built-in plugins' shared code and the random source, on the host target.
(cd builtin-plugins && cargo test -p tsdb-common -p random -p kafka-common -p kafka-sink -p kafka-source --target "$(rustc -vV | sed -n 's/^host: //p')")
cargo clippy --workspace --all-targets -- -D warnings
cargo build -p oort --bin oort
OORT_BIN="$(pwd)/target/debug/oort" cargo test --workspace -- --test-threads 4

bash examples/test-examples.sh
OORT_BIN="$(pwd)/target/debug/oort" bash examples/e2e-examples.sh
# Schema-driven fuzzing of the REST API from its GET /openapi.json
# (schemathesis, docs/rest-api.md): no request may get a 5xx.
OORT_BIN="$(pwd)/target/debug/oort" bash scripts/api-fuzz.sh

# A short run of every fuzz target (docs/fuzzing.md), last: its build is its own.
bash scripts/fuzz.sh --smoke
