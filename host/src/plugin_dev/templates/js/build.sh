#!/usr/bin/env bash
# Builds {{.name}}.wasm (a WebAssembly component, with componentize-js), then
# checks it as a server's install would and writes the package {{.name}}.zip
# (the component, its manifest{{if .source}} and conf keys{{end}}).
# Needs: node >= 18 and npm (the first build runs `npm install`), oort on PATH
# or OORT=/path/to/oort.
set -euo pipefail
cd "$(dirname "$0")"
OORT="${OORT:-oort}"
[ -d node_modules/@bytecodealliance/componentize-js ] || npm install --no-audit --no-fund
node build.mjs
"$OORT" plugin check {{.name}}.wasm --zip {{.name}}.zip
