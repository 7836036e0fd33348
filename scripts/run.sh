#!/usr/bin/env bash
# Builds and starts the server with embedded defaults (data in ./oort-data,
# REST on 127.0.0.1:9081) and its built-in plugins. Installs the
# wasm32-wasip2 target the plugins are built for, as the test command does.
# Extra arguments go to `oort serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target list --installed 2>/dev/null | grep -q '^wasm32-wasip2$' || rustup target add wasm32-wasip2
bash builtin-plugins/build.sh
exec cargo run --release -p oort -- serve "$@"
