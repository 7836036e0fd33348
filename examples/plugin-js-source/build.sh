#!/usr/bin/env bash
# Builds the `jscounter` source plugin: jscounter.wasm (a component, via
# componentize-js) and the package jscounter.zip holding, at its root,
# jscounter.wasm, the manifest jscounter.json and the conf keys jscounter.yaml.
# Installs componentize-js first if needed (scripts/toolchains.sh js).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TC="${OORT_TOOLCHAINS:-$ROOT/target/toolchains}"
NAME=jscounter

"$ROOT/scripts/toolchains.sh" js
cd "$HERE"
start=$(date +%s%N)
# The example's world (wit/jscounter.wit) with Oort's package and its WASI
# deps beside it, as componentize-js expects: <dir>/*.wit + <dir>/deps/*.
WIT="$(mktemp -d)"
trap 'rm -rf "$WIT"' EXIT
cp "$HERE/wit/"*.wit "$WIT/"
mkdir -p "$WIT/deps/oort-connector"
cp "$ROOT/wit/"*.wit "$WIT/deps/oort-connector/"
cp -r "$ROOT/wit/deps/." "$WIT/deps/"
node "$HERE/build.mjs" "$TC/node" "$WIT" "$NAME.wasm"
python3 - "$NAME" <<'PY'
import sys, zipfile
name = sys.argv[1]
with zipfile.ZipFile(f"{name}.zip", "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    for f in (f"{name}.wasm", f"{name}.json", f"{name}.yaml"):
        z.write(f, arcname=f)
PY
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "built $HERE/$NAME.wasm ($(wc -c <"$NAME.wasm") bytes) and $NAME.zip ($(wc -c <"$NAME.zip") bytes) in $ms ms"
