#!/usr/bin/env bash
# A ruleset that installs a WebAssembly plugin by URI and runs a rule through it.
#
#   examples/ruleset-wasm/run.sh
#
# 1. packages the `random` source plugin (builtin-plugins/dist) as random.zip
#    and serves it over HTTP on 127.0.0.1:$HTTP_PORT (python3 -m http.server);
# 2. pins the zip's sha256 into a copy of ruleset.json;
# 3. starts a throw-away Oort server (built-in plugins off, so the import has
#    to fetch the plugin) and runs `oort import` on the ruleset: plugin
#    downloaded, checked and compiled, conf key, stream and rule created;
# 4. shows the plugin, the rule's status and the rows it wrote, then
#    `oort export --rules hot` (the same document back, with the sha256).
#
# OORT_BIN picks the binary (default target/release/oort, built if missing).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
HTTP_PORT="${HTTP_PORT:-8765}"
REST="${OORT_REST:-127.0.0.1:9181}"
OORT="${OORT_BIN:-$ROOT/target/release/oort}"

if [ ! -x "$OORT" ]; then
  (cd "$ROOT" && cargo build --release -p oort --bin oort)
fi
DIST="$ROOT/builtin-plugins/dist"
if [ ! -f "$DIST/random.wasm" ]; then
  "$ROOT/builtin-plugins/build.sh" random
fi

WORK="$(mktemp -d)"
HTTP_PID=""
OORT_PID=""
cleanup() {
  if [ -n "$OORT_PID" ]; then kill "$OORT_PID" 2>/dev/null || true; fi
  if [ -n "$HTTP_PID" ]; then kill "$HTTP_PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== 1. package and serve the plugin"
mkdir -p "$WORK/pkg" "$WORK/www"
cp "$DIST/random.wasm" "$DIST/random.json" "$WORK/pkg/"
if [ -f "$DIST/random.yaml" ]; then cp "$DIST/random.yaml" "$WORK/pkg/"; fi
files=(random.wasm random.json)
if [ -f "$WORK/pkg/random.yaml" ]; then files+=(random.yaml); fi
if command -v zip >/dev/null; then
  (cd "$WORK/pkg" && zip -q "$WORK/www/random.zip" "${files[@]}")
else
  (cd "$WORK/pkg" && python3 -m zipfile -c "$WORK/www/random.zip" "${files[@]}")
fi
python3 -m http.server "$HTTP_PORT" --bind 127.0.0.1 --directory "$WORK/www" >/dev/null 2>&1 &
HTTP_PID=$!
SHA="$(sha256sum "$WORK/www/random.zip" | cut -d' ' -f1)"
echo "served http://127.0.0.1:$HTTP_PORT/random.zip (sha256 $SHA)"

echo "== 2. pin the sha256 into the ruleset"
python3 - "$HERE/ruleset.json" "$WORK/ruleset.json" "$SHA" "$HTTP_PORT" <<'EOF'
import json, sys
src, dst, sha, port = sys.argv[1:5]
doc = json.load(open(src))
entry = json.loads(doc["wasmPlugins"]["sources_random"])
entry["file"] = f"http://127.0.0.1:{port}/random.zip"
entry["sha256"] = sha
doc["wasmPlugins"]["sources_random"] = json.dumps(entry)
json.dump(doc, open(dst, "w"), indent=2)
EOF

echo "== 3. start Oort and import the ruleset"
# The package server is on 127.0.0.1, an internal address the default
# outbound policy refuses (docs/security.md): list it.
OORT__OUTBOUND__ALLOWED_HOSTS='[127.0.0.1]' \
OORT__PLUGINS__BUILTIN_DIR="$WORK/no-builtins" "$OORT" serve --data-dir "$WORK/data" --rest-addr "$REST" \
  >"$WORK/oort.log" 2>&1 &
OORT_PID=$!
for _ in $(seq 1 100); do
  if curl -sf "http://$REST/ping" >/dev/null; then break; fi
  sleep 0.1
done
"$OORT" import "$WORK/ruleset.json" --server "http://$REST"

echo "== 4. the plugin, the rule, its output"
curl -s "http://$REST/plugins/sources/random" | python3 -c \
  'import json,sys; i=json.load(sys.stdin); print("plugin", i["name"], i["version"], "from", i["file"])'
sleep 2
curl -s "http://$REST/rules/hot/status" | python3 -c \
  'import json,sys; s=json.load(sys.stdin); print("rule hot:", s["status"], {k: v for k, v in s.items() if k.endswith("records_in_total")})'
echo "first rows written by the rule ($WORK/data/hot):"
head -n 3 "$WORK/data/hot"

echo "== 5. export what rule hot needs"
"$OORT" export --rules hot --server "http://$REST"
