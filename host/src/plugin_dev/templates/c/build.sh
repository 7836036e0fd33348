#!/usr/bin/env bash
# Builds {{.name}}.wasm (a WebAssembly component), then checks it as a
# server's install would and writes the package {{.name}}.zip (the component,
# its manifest{{if .source}} and conf keys{{end}}).
#   1. wit-bindgen c: build/{{.world_c}}.{h,c} and the component type object
#   2. clang for wasm32-wasi (wasi-libc, a reactor: no main), linked by
#      wasm-component-ld, which makes the core module a component with the
#      WASI preview 1 -> 0.2 adapter.
# Needs: clang with the wasm32-wasi target and wasi-libc (CC=..., default
# clang-19, else clang), wit-bindgen and wasm-component-ld on PATH (cargo
# install wit-bindgen-cli wasm-component-ld); oort on PATH or OORT=/path/to/oort.
set -euo pipefail
cd "$(dirname "$0")"
OORT="${OORT:-oort}"
CC="${CC:-$(command -v clang-19 || command -v clang || echo clang)}"
rm -rf build
mkdir -p build
if ! out="$(wit-bindgen c wit --world {{.world}} --out-dir build 2>&1)"; then
  printf '%s\n' "$out" >&2
  exit 1
fi
"$CC" --target=wasm32-wasi -O2 -Wall -Wextra -mexec-model=reactor \
  -fuse-ld="$(command -v wasm-component-ld)" -Wl,--wasi-adapter=reactor \
  -Ibuild -Isrc -o {{.name}}.wasm \
  src/{{.name}}.c build/{{.world_c}}.c build/{{.world_c}}_component_type.o
"$OORT" plugin check {{.name}}.wasm --zip {{.name}}.zip
