#!/usr/bin/env bash
# Builds {{.name}}.wasm (a WebAssembly component, with componentize-py), then
# checks it as a server's install would and writes the package {{.name}}.zip
# (the component, its manifest{{if .source}} and conf keys{{end}}).
# Needs: componentize-py on PATH (pip install componentize-py) or
# COMPONENTIZE_PY=/path/to/it; oort on PATH or OORT=/path/to/oort.
set -euo pipefail
cd "$(dirname "$0")"
OORT="${OORT:-oort}"
CPY="${COMPONENTIZE_PY:-componentize-py}"
command -v "$CPY" >/dev/null || { echo "componentize-py not found: pip install componentize-py (or set COMPONENTIZE_PY)" >&2; exit 1; }
"$CPY" -d wit -w {{.world}} componentize -p src app -o {{.name}}.wasm
rm -rf src/__pycache__
"$OORT" plugin check {{.name}}.wasm --zip {{.name}}.zip
