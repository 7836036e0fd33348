#!/usr/bin/env bash
# Schema-driven fuzzing of the REST API: schemathesis (PyPI, the version in
# scripts/api-fuzz-requirements.txt) reads GET /openapi.json from a fresh
# server and sends generated requests, valid and invalid, to every documented
# operation. A 5xx answer fails the run (`not_a_server_error`): bad input must
# get a 4xx.
#
#   scripts/api-fuzz.sh                 # OORT_BIN or target/debug/oort
#   API_FUZZ_EXAMPLES=200 scripts/api-fuzz.sh   # more examples per operation (default 50)
#
# Left out: POST /stop (shuts the server down) and the three connectivity
# checks, POST /metadata/{sources,sinks,lookups}/connection/{type} (they dial
# whatever host the generated properties name). The server is started with
# outbound.schemes [file], so plugin installs and imports by URI read files
# under the data dir or are refused at once: nothing is fetched from the
# network. A data import's `stop` parameter is dropped (scripts/api_fuzz_hooks.py).
# A second pass names an existing stream and rule in every path parameter.
set -euo pipefail
cd "$(dirname "$0")/.."

OORT_TOOLCHAINS="${OORT_TOOLCHAINS:-$HOME/.cache/oort/toolchains}"
VENV="$OORT_TOOLCHAINS/schemathesis-venv"
REQS="scripts/api-fuzz-requirements.txt"
BIN="${OORT_BIN:-$(pwd)/target/debug/oort}"
EXAMPLES="${API_FUZZ_EXAMPLES:-50}"
PYTHON="${PYTHON:-python3}"

[[ -x "$BIN" ]] || { echo "api-fuzz: no oort binary at $BIN (cargo build -p oort --bin oort, or set OORT_BIN)" >&2; exit 1; }

# The venv, reinstalled when the pinned requirements change.
if ! cmp -s "$REQS" "$VENV/.requirements" 2>/dev/null; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
    cp "$REQS" "$VENV/.requirements"
fi

tmp="$(mktemp -d)"
pid=""
cleanup() {
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# Port 0: the server picks a free port and logs it ("REST API listening addr=...").
OORT_LOG=info OORT__OUTBOUND__SCHEMES='[file]' \
    "$BIN" serve --data-dir "$tmp/data" --rest-addr 127.0.0.1:0 >"$tmp/server.log" 2>&1 &
pid=$!
addr=""
for _ in $(seq 1 100); do
    addr="$(sed -n 's/.*REST API listening.*addr[=":]*\([0-9.]*:[0-9]*\).*/\1/p' "$tmp/server.log" | head -n1)"
    [[ -n "$addr" ]] && break
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/server.log" >&2; echo "api-fuzz: the server did not start" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$addr" ]] || { cat "$tmp/server.log" >&2; echo "api-fuzz: no listening address in the log" >&2; exit 1; }
echo "api-fuzz: server at http://$addr, $EXAMPLES examples per operation"

start=$SECONDS
status=0
# Run from the temporary dir: schemathesis keeps a .schemathesis/ cache in
# its working directory. One worker: with two, hypothesis failed once on its
# own ("AST constructor recursion depth mismatch"), a tool error, not the API's.
scripts="$(pwd)/scripts"
(cd "$tmp" && PYTHONPATH="$scripts" PYTHONDONTWRITEBYTECODE=1 SCHEMATHESIS_HOOKS=api_fuzz_hooks \
    "$VENV/bin/schemathesis" run "http://$addr/openapi.json" \
    --checks "${API_FUZZ_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}" \
    --max-examples "$EXAMPLES" \
    --seed "${API_FUZZ_SEED:-1}" \
    --workers 1 \
    --request-timeout 15 \
    --exclude-operation-id stop \
    --exclude-path-regex '^/metadata/(sources|sinks|lookups)/connection/' \
    --suppress-health-check all \
    --no-color) \
    || status=$?
echo "api-fuzz: schemathesis took $((SECONDS - start)) s"

# Second pass, deeper: a stream and a rule exist and every path id names
# them (schemathesis.toml), so the operations on one stream, rule or conf key
# reach their handlers' logic instead of a 404. Deletions and imports are
# left out of this pass (they would remove what it reaches).
if [[ "$status" -eq 0 ]] && kill -0 "$pid" 2>/dev/null; then
    api() { curl -sf -X POST "http://$addr$1" -H 'Content-Type: application/json' -d "$2" >/dev/null; }
    api /streams '{"sql":"CREATE STREAM fz_s (a BIGINT) WITH (DATASOURCE=\"fz\", TYPE=\"memory\", FORMAT=\"JSON\")"}'
    api /rules '{"id":"fz_r","sql":"SELECT * FROM fz_s","actions":[{"nop":{}}]}'
    cat >"$tmp/schemathesis.toml" <<'TOML'
[parameters]
"path.id" = "fz_r"
"path.name" = "fz_s"
"path.typ" = "mqtt"
"path.key" = "fz_k"
TOML
    start=$SECONDS
    (cd "$tmp" && PYTHONPATH="$scripts" PYTHONDONTWRITEBYTECODE=1 SCHEMATHESIS_HOOKS=api_fuzz_hooks \
        "$VENV/bin/schemathesis" --config-file "$tmp/schemathesis.toml" run "http://$addr/openapi.json" \
        --checks not_a_server_error \
        --max-examples "$EXAMPLES" \
        --seed "${API_FUZZ_SEED:-1}" \
        --workers 1 \
        --request-timeout 15 \
        --exclude-operation-id stop \
        --exclude-method DELETE \
        --exclude-path-regex '^/(metadata/(sources|sinks|lookups)/connection/|data/import|v2/data/import|ruleset/import|async/data/import)' \
        --suppress-health-check all \
        --no-color) \
        || status=$?
    echo "api-fuzz: the seeded pass took $((SECONDS - start)) s"
fi

if ! kill -0 "$pid" 2>/dev/null; then
    echo "api-fuzz: the server exited during the run; its log:" >&2
    tail -n 50 "$tmp/server.log" >&2
    exit 1
fi
if grep -q "panicked" "$tmp/server.log"; then
    echo "api-fuzz: the server panicked; its log:" >&2
    grep -B2 -A10 "panicked" "$tmp/server.log" >&2
    exit 1
fi
exit "$status"
