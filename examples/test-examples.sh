#!/usr/bin/env bash
# Builds the example plugins (Python `pylog` sink, JavaScript `jscounter`
# source, C `cupper` sink) and checks each one:
#   - wasm-tools validates the component;
#   - it exports exactly `oort:connector/<kind>@0.1.0`;
#   - `wasm-tools component targets` accepts it against the `<kind>-plugin-host`
#     world of wit/ (so it imports nothing the host does not link);
#   - its zip holds <name>.wasm (identical to the build) + <name>.json (+ an
#     optional <name>.yaml) at the root, and the manifest's name/kind/version
#     are right;
#   - test-examples.mjs runs it under Node.js (jco + WASI shim) through its
#     exports with real inputs.
# Prints a size/time table and closes with "examples: N passed, N failed".
#
#   examples/test-examples.sh [pylog] [jscounter] [cupper]     (default: all)
#
# Installs what it needs first (scripts/toolchains.sh; fast when present).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
TC="${OORT_TOOLCHAINS:-$ROOT/target/toolchains}"
WT="$TC/cargo/bin/wasm-tools"

declare -A DIR=([pylog]=plugin-python-sink [jscounter]=plugin-js-source [cupper]=plugin-c-sink)
declare -A KIND=([pylog]=sink [jscounter]=source [cupper]=sink)
names=("$@")
if [ ${#names[@]} -eq 0 ]; then names=(pylog jscounter cupper); fi
for n in "${names[@]}"; do
  [ -n "${DIR[$n]:-}" ] || { echo "unknown example '$n' (pylog, jscounter, cupper)"; exit 2; }
done

# wasm-tools for the checks, the JS toolchain for the Node.js run; each
# build.sh installs its own language's toolchain.
"$ROOT/scripts/toolchains.sh" wasm-tools js

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "  ok   $1"; }
bad() { failed=$((failed + 1)); echo "  FAIL $1"; }
check() { # name command...
  local name="$1"
  shift
  if "$@" >/tmp/oort-example-check.$$ 2>&1; then ok "$name"; else
    bad "$name"
    sed 's/^/       /' /tmp/oort-example-check.$$ | head -n 20
  fi
}
trap 'rm -f /tmp/oort-example-check.$$' EXIT

# `wasm-tools component targets` matches versions exactly, while the host
# (wasmtime) links any WASI 0.2.x import to its 0.2.12 implementation. Each
# language's runtime brings its own WASI patch version (componentize-py 0.2.9,
# the C reactor adapter 0.2.6), so the check runs against a copy of wit/ whose
# WASI packages carry the component's version, with the `@since` gates
# dropped (0.2.12 is a superset of every earlier 0.2.x).
targets_host() { # wasm kind imports
  local vers
  vers="$(sed -n 's/^wasi:[a-z-]*\/[a-z-]*@\(0\.2\.[0-9]*\)$/\1/p' <<<"$3" | sort -u)"
  if [ "$(wc -l <<<"$vers")" -gt 1 ]; then
    echo "mixed WASI versions: $(echo $vers)"
    return 1
  fi
  local v="${vers:-0.2.12}"
  if [ "${v##*.}" -gt 12 ]; then
    echo "imports WASI $v, newer than the host's 0.2.12"
    return 1
  fi
  local w
  w="$(mktemp -d)"
  cp -r "$ROOT/wit/." "$w/"
  find "$w" -name '*.wit' -exec sed -i -e "s/@0\.2\.12\b/@$v/g" -e '/^ *@since(version = [0-9.]*)$/d' {} +
  local rc=0
  "$WT" component targets "$w" --world "$2-plugin-host" "$1" || rc=$?
  rm -rf "$w"
  return $rc
}

declare -A BUILD_MS WASM_BYTES ZIP_BYTES
for n in "${names[@]}"; do
  d="$HERE/${DIR[$n]}"
  k="${KIND[$n]}"
  echo "== $n ($k, ${DIR[$n]})"
  t0=$(date +%s%N)
  if ! "$d/build.sh"; then
    bad "$n: build.sh"
    continue
  fi
  BUILD_MS[$n]=$(( ($(date +%s%N) - t0) / 1000000 ))
  ok "$n: build.sh"
  wasm="$d/$n.wasm"
  WASM_BYTES[$n]=$(wc -c <"$wasm")
  ZIP_BYTES[$n]=$(wc -c <"$d/$n.zip")

  check "$n: wasm-tools validate" "$WT" validate "$wasm"
  wit="$("$WT" component wit "$wasm")"
  # Top-level lines of the component's world (two-space indent), `;` dropped.
  exports="$(printf '%s\n' "$wit" | sed -n 's/^  export \(.*\)$/\1/p' | sed 's/;$//' | sort)"
  imports="$(printf '%s\n' "$wit" | sed -n 's/^  import \(.*\)$/\1/p' | sed 's/;$//' | sort)"
  echo "  exports: $(tr '\n' ' ' <<<"$exports")"
  echo "  imports: $(tr '\n' ' ' <<<"$imports")"
  check "$n: exports oort:connector/$k@0.1.0" grep -qx "oort:connector/$k@0.1.0" <<<"$exports"
  # componentize-py leaves its pre-init hook exported as a plain-named
  # `exports` interface; the host ignores extra exports. Any other
  # interface export (oort:, wasi:) would be a wrong world.
  check "$n: exports no other interface" \
    bash -c '! grep -v -x -E "oort:connector/$2@0\.1\.0|exports: interface \{" <<<"$1"' _ "$exports" "$k"
  check "$n: imports oort:connector/host@0.1.0" grep -qx 'oort:connector/host@0.1.0' <<<"$imports"
  check "$n: imports only oort:connector and WASI 0.2 interfaces" \
    bash -c '! grep -v -E "^(oort:connector/(host|types)@0\.1\.0|wasi:(io|clocks|random|cli|filesystem|sockets)/[a-z-]+@0\.2\.[0-9]+)$" <<<"$1"' _ "$imports"
  check "$n: fits the $k-plugin-host world (wasm-tools component targets)" targets_host "$wasm" "$k" "$imports"
  check "$n: zip layout and manifest" python3 - "$d" "$n" "$k" <<'PY'
import json, sys, zipfile
d, name, kind = sys.argv[1:]
z = zipfile.ZipFile(f"{d}/{name}.zip")
entries = sorted(z.namelist())
allowed = {f"{name}.wasm", f"{name}.json", f"{name}.yaml"}
assert set(entries) <= allowed and {f"{name}.wasm", f"{name}.json"} <= set(entries), entries
assert z.read(f"{name}.wasm") == open(f"{d}/{name}.wasm", "rb").read(), "zip's wasm differs from the build"
assert z.read(f"{name}.wasm")[:8] == b"\0asm\x0d\0\x01\0", "not a component"
m = json.loads(z.read(f"{name}.json"))
assert m.get("name") == name, m.get("name")
assert m.get("kind") == kind, m.get("kind")
assert m.get("version", "").strip(), "no version"
assert set(m.get("permissions", {})) <= {"outbound", "dirs", "env"}, m.get("permissions")
PY
done

echo "== behaviour (Node.js + jco + preview2-shim)"
node_flags=()
# componentize-py output uses extended-const, which Node.js 20 keeps behind a flag.
if node --v8-options 2>/dev/null | grep -q -- '--experimental-wasm-extended-const'; then
  node_flags+=(--experimental-wasm-extended-const)
fi
built=()
for n in "${names[@]}"; do [ -n "${BUILD_MS[$n]:-}" ] && built+=("$n"); done
if [ ${#built[@]} -gt 0 ]; then
  out="$(node "${node_flags[@]}" "$HERE/test-examples.mjs" "$TC/node" "$HERE" "${built[@]}" 2>&1)" || true
  printf '%s\n' "$out" | sed '$d'
  last="$(printf '%s\n' "$out" | tail -n 1)"
  if [[ "$last" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
  else
    bad "behaviour tests did not finish: $last"
  fi
fi

echo "== sizes and build times"
printf '%-10s %-7s %12s %12s %10s\n' plugin kind "wasm bytes" "zip bytes" "build ms"
for n in "${built[@]}"; do
  printf '%-10s %-7s %12s %12s %10s\n' "$n" "${KIND[$n]}" "${WASM_BYTES[$n]}" "${ZIP_BYTES[$n]}" "${BUILD_MS[$n]}"
done
echo "examples: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
