#!/usr/bin/env bash
# Installs the toolchains that build Oort connector plugins in languages other
# than Rust (see examples/plugin-*/), all under target/toolchains/ except the
# Debian packages. Idempotent: a part already installed at the pinned version
# is skipped after a version check, so a second run takes about a second.
#
#   scripts/toolchains.sh [python] [js] [c] [wasm-tools] [tansu] [clang]
#   (default: all but clang, which c includes)
#
#   python      venv target/toolchains/py with componentize-py (PyPI)
#   js          target/toolchains/node with @bytecodealliance/componentize-js
#               and @bytecodealliance/jco (npm; needs the machine's node >= 18)
#   c           Debian clang-19, lld-19, wasi-libc, libclang-rt-19-dev-wasm32
#               (apt-get, needs root) + wit-bindgen-cli and wasm-component-ld
#               (cargo install into target/toolchains/cargo)
#   clang       Debian clang-19 only (apt-get): builtin-plugins/build.sh
#               asks for it when no clang can compile C for wasm32 (ring,
#               the kafka plugins' TLS)
#   wasm-tools  wasm-tools (cargo install into target/toolchains/cargo), used
#               by examples/test-examples.sh to inspect the built components
#   tansu       Tansu, a Kafka-compatible broker in Rust (cargo install into
#               target/toolchains/cargo, unoptimised: it only serves tests),
#               which the kafka plugins' end-to-end tests start privately
#
# Cargo builds use CARGO_TARGET_DIR=target/toolchains/cargo-target so they
# never wait on the workspace's build lock. Environment overrides:
# OORT_TOOLCHAINS (install root, default <repo>/target/toolchains).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TC="${OORT_TOOLCHAINS:-$ROOT/target/toolchains}"

# Pinned versions (bump together with the examples' READMEs).
COMPONENTIZE_PY_VERSION=0.25.1
COMPONENTIZE_JS_VERSION=0.23.0
JCO_VERSION=1.35.0
WIT_BINDGEN_CLI_VERSION=0.63.0
WASM_COMPONENT_LD_VERSION=0.5.21
WASM_TOOLS_VERSION=1.263.0
TANSU_VERSION=0.6.0
LLVM_MAJOR=19
APT_PACKAGES=("clang-$LLVM_MAJOR" "lld-$LLVM_MAJOR" wasi-libc "libclang-rt-$LLVM_MAJOR-dev-wasm32")

say() { printf '[toolchains] %s\n' "$*"; }

# --- Python: componentize-py in a venv ---------------------------------------
install_python() {
  local venv="$TC/py"
  local have=""
  if [ -x "$venv/bin/componentize-py" ]; then
    have="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("componentize-py"))' 2>/dev/null || true)"
  fi
  if [ "$have" = "$COMPONENTIZE_PY_VERSION" ]; then
    say "python: componentize-py $have already in $venv"
    return
  fi
  local py="${PYTHON:-python3}"
  command -v "$py" >/dev/null || { say "python: $py not found"; exit 1; }
  if [ ! -x "$venv/bin/python" ]; then
    say "python: creating venv $venv"
    # Debian's system python needs python3-venv; pyenv's python has venv built in.
    if ! "$py" -m venv "$venv" 2>/dev/null; then
      apt_install python3-venv
      rm -rf "$venv"
      "$py" -m venv "$venv"
    fi
  fi
  say "python: installing componentize-py==$COMPONENTIZE_PY_VERSION (PyPI, ~46 MB wheel)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "componentize-py==$COMPONENTIZE_PY_VERSION"
  say "python: $("$venv/bin/componentize-py" --version)"
}

# --- JavaScript: componentize-js + jco from npm ------------------------------
npm_version() { # prints the installed version of an npm package under $TC/node, or nothing
  local pj="$TC/node/node_modules/$1/package.json"
  [ -f "$pj" ] && node -e 'process.stdout.write(require(process.argv[1]).version)' "$pj" 2>/dev/null || true
}

install_js() {
  command -v node >/dev/null || { say "js: node not found (install Node.js >= 18: apt-get install nodejs npm)"; exit 1; }
  command -v npm >/dev/null || { say "js: npm not found"; exit 1; }
  if [ "$(npm_version @bytecodealliance/componentize-js)" = "$COMPONENTIZE_JS_VERSION" ] &&
    [ "$(npm_version @bytecodealliance/jco)" = "$JCO_VERSION" ]; then
    say "js: componentize-js $COMPONENTIZE_JS_VERSION and jco $JCO_VERSION already in $TC/node"
    return
  fi
  mkdir -p "$TC/node"
  [ -f "$TC/node/package.json" ] || printf '{ "name": "oort-toolchain-js", "private": true }\n' >"$TC/node/package.json"
  say "js: installing @bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION @bytecodealliance/jco@$JCO_VERSION (npm)"
  npm install --prefix "$TC/node" --no-audit --no-fund --loglevel=error --save-exact \
    "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION" "@bytecodealliance/jco@$JCO_VERSION"
  say "js: componentize-js $(npm_version @bytecodealliance/componentize-js), jco $(npm_version @bytecodealliance/jco)"
}

# --- Debian packages ---------------------------------------------------------
APT_UPDATED=0
apt_install() { # installs the given Debian packages that are missing
  local missing=()
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt: apt-get update"
    $sudo apt-get update -qq
    APT_UPDATED=1
  fi
  say "apt: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- cargo install into $TC/cargo --------------------------------------------
cargo_tool() { # crate version binary [cargo install options...]
  local crate="$1" version="$2" bin="$3"
  shift 3
  local exe="$TC/cargo/bin/$bin"
  if [ -x "$exe" ] && "$exe" --version 2>/dev/null | grep -qF "$version"; then
    say "cargo: $crate $version already in $TC/cargo/bin"
    return
  fi
  say "cargo: installing $crate $version (crates.io, compiles from source: a few minutes on 2 cores)"
  CARGO_TARGET_DIR="$TC/cargo-target" cargo install --quiet --locked --root "$TC/cargo" \
    --version "=$version" "$@" "$crate"
  say "cargo: $("$exe" --version)"
}

install_c() {
  apt_install "${APT_PACKAGES[@]}"
  say "c: $(clang-$LLVM_MAJOR --version | head -n1); wasi-libc $(dpkg-query -W -f='${Version}' wasi-libc)"
  cargo_tool wit-bindgen-cli "$WIT_BINDGEN_CLI_VERSION" wit-bindgen
  cargo_tool wasm-component-ld "$WASM_COMPONENT_LD_VERSION" wasm-component-ld
}

install_clang() {
  apt_install "clang-$LLVM_MAJOR"
  say "clang: $(clang-$LLVM_MAJOR --version | head -n1)"
}

install_wasm_tools() {
  cargo_tool wasm-tools "$WASM_TOOLS_VERSION" wasm-tools
}

install_tansu() {
  # --debug: an unoptimised build compiles in about half the time, and the
  # tests send thousands of records, not millions. dynostore brings the
  # in-memory storage engine (memory://), libsql a file one (sqlite://) that
  # keeps users across a restart (the SASL test creates its user with
  # authentication off, then restarts the broker with it on).
  local features="dynostore,libsql"
  local stamp="$TC/cargo/.tansu-features"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$features" ]; then rm -f "$TC/cargo/bin/tansu"; fi
  if [ ! -f "$stamp" ]; then rm -f "$TC/cargo/bin/tansu"; fi
  cargo_tool tansu "$TANSU_VERSION" tansu --debug --features "$features"
  printf '%s' "$features" >"$stamp"
}

parts=("$@")
if [ ${#parts[@]} -eq 0 ]; then parts=(python js c wasm-tools tansu); fi
mkdir -p "$TC"
for part in "${parts[@]}"; do
  case "$part" in
    python | py) install_python ;;
    js | javascript | node) install_js ;;
    c) install_c ;;
    clang) install_clang ;;
    wasm-tools) install_wasm_tools ;;
    tansu | kafka) install_tansu ;;
    *)
      say "unknown part '$part' (python, js, c, clang, wasm-tools, tansu)"
      exit 2
      ;;
  esac
done
