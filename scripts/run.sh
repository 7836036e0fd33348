#!/usr/bin/env bash
# Builds and starts the server with embedded defaults (data in ./oort-data,
# REST on 127.0.0.1:9081). Extra arguments go to `oort serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x builtin-plugins/build.sh ] && rustup target list --installed 2>/dev/null | grep -q '^wasm32-wasip2$'; then
  bash builtin-plugins/build.sh
fi
exec cargo run --release -p oort -- serve "$@"
