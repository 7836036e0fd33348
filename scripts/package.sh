#!/usr/bin/env bash
# Builds the tarball to ship Oort to an edge box:
#
#   oort-<version>-<arch>.tar.gz
#     oort-<version>/bin/oort                        server and CLI (symbols kept, debug info moved out)
#     oort-<version>/bin/plugins/                    the built-in plugins, found beside the binary
#     oort-<version>/etc/oort.yaml                   every setting with its default (docs/configuration.md)
#     oort-<version>/lib/systemd/system/oort.service a unit running it with its state in /var/lib/oort
#     oort-<version>/README.md
#   oort-<version>-<arch>-debug.tar.gz               bin/oort.debug, the debug info (gdb and perf find
#                                                    it through the binary's .gnu_debuglink)
#
#   scripts/package.sh [--out DIR]        (default DIR: target/package)
#
# Environment: OORT_BIN packages an existing binary instead of building the
# dist one (the tests package their debug build); PROFILE=dev|release|dist;
# OORT_PLUGINS_DIR takes built plugins from there instead of building them.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/package
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    *) echo "usage: scripts/package.sh [--out DIR]" >&2; exit 2 ;;
  esac
done
PROFILE="${PROFILE:-dist}"
rustup target list --installed 2>/dev/null | grep -q '^wasm32-wasip2$' || rustup target add wasm32-wasip2
if [ -z "${OORT_BIN:-}" ]; then
  cargo build --profile "$PROFILE" -p oort --bin oort
  dir=$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
  OORT_BIN="${CARGO_TARGET_DIR:-target}/$dir/oort"
fi
plugins="${OORT_PLUGINS_DIR:-}"
if [ -z "$plugins" ]; then
  bash builtin-plugins/build.sh >/dev/null
  plugins=builtin-plugins/dist
fi
version="$("$OORT_BIN" --version | awk '{print $2}')"
arch="$(uname -m)"
name="oort-$version"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/$name"
mkdir -p "$root/bin/plugins" "$root/etc" "$root/lib/systemd/system"
cp "$OORT_BIN" "$root/bin/oort"
# The debug info and the symbol table go to their own file (objcopy,
# binutils), linked from the binary: debuggers and addr2line read them from
# oort.debug; the shipped binary has neither (45 MB with its symbols,
# 38.7 MB without, 2026-12-05).
debug=""
if command -v objcopy >/dev/null && objdump -h "$root/bin/oort" 2>/dev/null | grep -q '\.debug_info'; then
  mkdir -p "$stage/debug/$name/bin"
  debug="$stage/debug/$name/bin/oort.debug"
  objcopy --only-keep-debug "$root/bin/oort" "$debug"
  (cd "$(dirname "$debug")" && objcopy --strip-all --add-gnu-debuglink=oort.debug "$root/bin/oort")
fi
# The shipped plugins, without compiled artifacts of this machine's build.
(cd "$plugins" && find . -name .compiled -prune -o -type f -print | while read -r f; do
  mkdir -p "$root/bin/plugins/$(dirname "$f")"
  cp "$f" "$root/bin/plugins/$f"
done)
# The documented listing of every key (a test checks it parses), with the
# data dir a system service uses.
sed -n '/^# oort.yaml/,/^```/p' docs/configuration.md | sed '$d' \
  | sed 's|^data_dir: oort-data   |data_dir: /var/lib/oort|' >"$root/etc/oort.yaml"
cat >"$root/lib/systemd/system/oort.service" <<UNIT
[Unit]
Description=Oort edge stream processing
Documentation=https://example.invalid/oort/docs
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/opt/$name/bin/oort serve --config /opt/$name/etc/oort.yaml --data-dir /var/lib/oort
DynamicUser=yes
StateDirectory=oort
Restart=on-failure
RestartSec=2
# SIGTERM drains the rules (messages in flight are written or left unacknowledged).
TimeoutStopSec=30
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
UNIT
cat >"$root/README.md" <<README
# Oort $version

    tar -C /opt -xzf $name-$arch.tar.gz
    /opt/$name/bin/oort serve --config /opt/$name/etc/oort.yaml --data-dir ./oort-data

REST API on 127.0.0.1:9081 (etc/oort.yaml: \`rest.addr\`). As a service:

    cp /opt/$name/lib/systemd/system/oort.service /etc/systemd/system/
    systemctl daemon-reload && systemctl enable --now oort

Built-in plugins are loaded from bin/plugins/ beside the binary. Documentation: docs/ in the
source repository (configuration.md, cli.md, plugins/).
README
mkdir -p "$OUT"
tar -C "$stage" -czf "$OUT/$name-$arch.tar.gz" "$name"
echo "wrote $OUT/$name-$arch.tar.gz ($(wc -c <"$OUT/$name-$arch.tar.gz") bytes; binary $(wc -c <"$root/bin/oort") bytes)"
if [ -n "$debug" ]; then
  tar -C "$stage/debug" -czf "$OUT/$name-$arch-debug.tar.gz" "$name"
  echo "wrote $OUT/$name-$arch-debug.tar.gz (the debug info, $(wc -c <"$debug") bytes)"
fi
