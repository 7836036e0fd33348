#!/usr/bin/env bash
# Builds Oort's built-in plugins for wasm32-wasip2 (release) and copies each
# <name>.wasm, <name>.json (manifest) and <name>.yaml (default conf keys, if
# any) into dist/ (a plugin that exists as both a source and a sink, like
# nats, goes to dist/sources/ and dist/sinks/). Usage: build.sh [crate...]
# CARGO_TARGET_DIR may point elsewhere (tests use their own, to avoid waiting
# on the root workspace's cargo lock).
set -euo pipefail
cd "$(dirname "$0")"
# crate  artifact  plugin-name  dist-subdir
table="random random random .
nats-source nats_source nats sources
nats-sink nats_sink nats sinks
discard discard discard .
influx influx influx .
influx2 influx2 influx2 .
tdengine tdengine tdengine .
zmq-source zmq_source zmq sources
zmq-sink zmq_sink zmq sinks
kafka-source kafka_source kafka sources
kafka-sink kafka_sink kafka sinks"
# The kafka plugins' TLS (ring) compiles C for wasm32: clang, Debian's
# clang-19 when plain `clang` is absent (installed by scripts/toolchains.sh
# clang when neither is there). CC_wasm32_wasip2 overrides.
if [ -z "${CC_wasm32_wasip2:-}" ]; then
  if command -v clang >/dev/null && clang --print-targets 2>/dev/null | grep -q wasm32; then
    export CC_wasm32_wasip2=clang
  else
    command -v clang-19 >/dev/null || bash ../scripts/toolchains.sh clang
    export CC_wasm32_wasip2=clang-19
  fi
fi
want=" $* "
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
args=()
while read -r crate _ _ _; do
  if [ $# -eq 0 ] || [[ "$want" == *" $crate "* ]]; then args+=(-p "$crate"); fi
done <<< "$table"
cargo build --release --target wasm32-wasip2 --target-dir "$target_dir" "${args[@]}"
while read -r crate artifact name sub; do
  if [ $# -ne 0 ] && [[ "$want" != *" $crate "* ]]; then continue; fi
  out="dist/$sub"
  mkdir -p "$out"
  cp "$target_dir/wasm32-wasip2/release/$artifact.wasm" "$out/$name.wasm"
  cp "$crate/$name.json" "$out/$name.json"
  if [ -f "$crate/$name.yaml" ]; then cp "$crate/$name.yaml" "$out/$name.yaml"; fi
  echo "built $out/$name.wasm ($(wc -c < "$out/$name.wasm") bytes)"
done <<< "$table"
