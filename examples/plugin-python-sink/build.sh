#!/usr/bin/env bash
# Builds the `pylog` sink plugin: pylog.wasm (a component, via componentize-py)
# and the package pylog.zip (pylog.wasm + pylog.json at the zip's root).
# Installs componentize-py first if needed (scripts/toolchains.sh python).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TC="${OORT_TOOLCHAINS:-$ROOT/target/toolchains}"
NAME=pylog

"$ROOT/scripts/toolchains.sh" python
cd "$HERE"
start=$(date +%s%N)
# The bindings (wit_world/, componentize_py_types.py) are generated inside
# componentize-py's temporary build, not in this folder.
"$TC/py/bin/componentize-py" -d "$ROOT/wit" -w sink-plugin componentize -p "$HERE/src" app -o "$NAME.wasm"
rm -rf "$HERE/src/__pycache__"
python3 - "$NAME" <<'PY'
import sys, zipfile
name = sys.argv[1]
with zipfile.ZipFile(f"{name}.zip", "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    for f in (f"{name}.wasm", f"{name}.json"):
        z.write(f, arcname=f)
PY
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "built $HERE/$NAME.wasm ($(wc -c <"$NAME.wasm") bytes) and $NAME.zip ($(wc -c <"$NAME.zip") bytes) in $ms ms"
