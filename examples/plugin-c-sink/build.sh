#!/usr/bin/env bash
# Builds the `cupper` sink plugin: cupper.wasm (a component) and the package
# cupper.zip (cupper.wasm + cupper.json at the zip's root).
#
#   1. wit-bindgen c       -> build/sink_plugin.{h,c} + build/sink_plugin_component_type.o
#   2. clang-19 (wasm32-wasi, Debian's WASI p1 wasi-libc, reactor: no main)
#      linking through wasm-component-ld, which runs wasm-ld and wraps the
#      core module into a component with the WASI p1->p2 reactor adapter.
#
# Installs the C toolchain first if needed (scripts/toolchains.sh c).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TC="${OORT_TOOLCHAINS:-$ROOT/target/toolchains}"
NAME=cupper
CLANG="${CLANG:-clang-19}"

"$ROOT/scripts/toolchains.sh" c
cd "$HERE"
start=$(date +%s%N)
rm -rf build
mkdir -p build
if ! out="$("$TC/cargo/bin/wit-bindgen" c "$ROOT/wit" --world sink-plugin --out-dir build 2>&1)"; then
  printf '%s\n' "$out" >&2
  exit 1
fi
"$CLANG" --target=wasm32-wasi -O2 -Wall -Wextra -mexec-model=reactor \
  -fuse-ld="$TC/cargo/bin/wasm-component-ld" -Wl,--wasi-adapter=reactor \
  -Ibuild -o "$NAME.wasm" \
  src/cupper.c build/sink_plugin.c build/sink_plugin_component_type.o
python3 - "$NAME" <<'PY'
import sys, zipfile
name = sys.argv[1]
with zipfile.ZipFile(f"{name}.zip", "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    for f in (f"{name}.wasm", f"{name}.json"):
        z.write(f, arcname=f)
PY
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "built $HERE/$NAME.wasm ($(wc -c <"$NAME.wasm") bytes) and $NAME.zip ($(wc -c <"$NAME.zip") bytes) in $ms ms"
