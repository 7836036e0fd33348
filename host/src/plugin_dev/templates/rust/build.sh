#!/usr/bin/env bash
# Builds {{.name}}.wasm (a WebAssembly component for wasm32-wasip2), then checks
# it as a server's install would and writes the package {{.name}}.zip (the
# component, its manifest{{if .source}} and conf keys{{end}}).
# Needs: cargo (rustup adds the wasm32-wasip2 target), oort on PATH or OORT=/path/to/oort.
set -euo pipefail
cd "$(dirname "$0")"
OORT="${OORT:-oort}"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
cargo build --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{.crate_file}}.wasm" {{.name}}.wasm
"$OORT" plugin check {{.name}}.wasm --zip {{.name}}.zip
