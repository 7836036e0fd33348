#!/usr/bin/env bash
# End to end: installs the three example plugins (built by their build.sh)
# into a running `oort` server over REST, runs a rule from the JavaScript
# source through the Python and C sinks, and checks that records pass with no
# exception. Closes with "examples-e2e: N passed, N failed".
#
#   examples/e2e-examples.sh        (OORT_BIN: the server binary, default target/debug/oort)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BIN="${OORT_BIN:-$ROOT/target/debug/oort}"

for z in plugin-python-sink/pylog.zip plugin-js-source/jscounter.zip plugin-c-sink/cupper.zip; do
  [ -f "$HERE/$z" ] || { echo "missing $HERE/$z: run examples/test-examples.sh (or the build.sh) first"; exit 1; }
done

DATA="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
B="http://127.0.0.1:$PORT"
# The example packages are built in this directory, outside the data dir:
# let file:// reach them (docs/security.md).
OORT__OUTBOUND__FILE_DIRS="[$HERE]" OORT_LOG=info "$BIN" serve --data-dir "$DATA" --rest-addr "127.0.0.1:$PORT" >"$DATA/server.log" 2>&1 &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT
for _ in $(seq 1 200); do curl -fs "$B/ping" >/dev/null 2>&1 && break; sleep 0.1; done

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "  ok   $1"; }
bad() { failed=$((failed + 1)); echo "  FAIL $1"; }

install() { # kind name zip
  local t0=$SECONDS code
  code=$(curl -s -o "$DATA/resp" -w '%{http_code}' -m 900 -X POST "$B/plugins/$1" \
    -H 'Content-Type: application/json' \
    -d "{\"name\":\"$2\",\"file\":\"file://$HERE/$3\"}")
  if [ "$code" = 201 ]; then ok "install $2 ($((SECONDS - t0)) s)"; else bad "install $2: $code $(cat "$DATA/resp")"; fi
}
install sinks pylog plugin-python-sink/pylog.zip
install sinks cupper plugin-c-sink/cupper.zip
install sources jscounter plugin-js-source/jscounter.zip

post() { # path body expected-code
  local code
  code=$(curl -s -o "$DATA/resp" -w '%{http_code}' -X POST "$B$1" -H 'Content-Type: application/json' -d "$2")
  if [ "$code" = "$3" ]; then ok "POST $1"; else bad "POST $1: $code $(cat "$DATA/resp")"; fi
}
post /streams '{"sql":"CREATE STREAM counter (n BIGINT) WITH (TYPE=\"jscounter\", DATASOURCE=\"demo\", CONF_KEY=\"fast\")"}' 201
post /rules '{"id":"examples","sql":"SELECT n FROM counter","actions":[{"pylog":{"prefix":"py"}},{"cupper":{"prefix":"c"}}]}' 201

got=""
for _ in $(seq 1 300); do
  st="$(curl -s "$B/v2/rules/examples/status")"
  got="$(python3 - "$st" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
py = s.get("sink_pylog_0_0_records_out_total", 0)
c = s.get("sink_cupper_1_0_records_out_total", 0)
src = s.get("source_counter_0_records_in_total", 0)
exc = sum(v for k, v in s.items() if k.endswith("_exceptions_total"))
print("ok" if py >= 3 and c >= 3 and src >= 3 and exc == 0 and s.get("status") == "running"
      else f"status={s.get('status')} src={src} pylog={py} cupper={c} exceptions={exc} {s.get('message','')}")
PY
)"
  [ "$got" = ok ] && break
  sleep 0.2
done
if [ "$got" = ok ]; then ok "jscounter -> rule -> pylog + cupper"; else bad "records did not pass: $got"; fi
if grep -q "py" "$DATA/server.log" && grep -qi "plugin" "$DATA/server.log"; then ok "plugin log lines in the server log"; else bad "no plugin log lines"; fi

[ "$failed" = 0 ] || { echo "--- server log ---"; tail -40 "$DATA/server.log"; }
echo "examples-e2e: $passed passed, $failed failed"
[ "$failed" = 0 ]
