#!/usr/bin/env python3
"""Regenerates the generated seeds of the fuzz targets (files named gen_*).

    python3 fuzz/seeds/gen.py

Hand-written seeds (any other name) are kept. Sources, all from the tests:
  - template: the string literals holding `{{` in the template unit tests and
    the sink/connector sources (dataTemplate and dynamic property examples);
  - props: the `json!({...})` objects of the sink and connector unit tests
    and the integration tests, and every action's properties in them;
  - rule_json: those objects that are rules (`sql` with `actions` or `id`);
  - sql: the SQL of those rules;
  - zip: small plugin packages built here (valid ones and refused ones:
    `../` names, absolute paths, a symlink, missing manifest, bad header...).
Only the standard library is used.
"""

import hashlib
import io
import json
import os
import re
import stat
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")
MAX_LEN = 16384

# A component binary header (what `package::unpack` checks) and a core module.
COMPONENT = b"\x00asm\x0d\x00\x01\x00" + b"\x00" * 8
CORE_MODULE = b"\x00asm\x01\x00\x00\x00"


def rust_files(*dirs):
    for d in dirs:
        for base, _, files in os.walk(os.path.join(ROOT, d)):
            if "/target" in base:
                continue
            for f in sorted(files):
                if f.endswith(".rs"):
                    yield os.path.join(base, f)


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


RAW = re.compile(r'r(#+)"(.*?)"\1', re.S)
PLAIN = re.compile(r'(?<![A-Za-z0-9_#])"((?:[^"\\]|\\.)*)"', re.S)


def unescape(s):
    """A Rust string literal's body to its value (common escapes only)."""
    s = re.sub(r"\\\n\s*", "", s)  # line continuation
    out, i = [], 0
    simple = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n in simple:
                out.append(simple[n])
                i += 2
                continue
            m = re.match(r"u\{([0-9a-fA-F]+)\}", s[i + 1 :])
            if m:
                out.append(chr(int(m.group(1), 16)))
                i += 2 + len(m.group(0)) - 1
                continue
            m = re.match(r"x([0-9a-fA-F]{2})", s[i + 1 :])
            if m:
                out.append(chr(int(m.group(1), 16)))
                i += 4
                continue
        out.append(c)
        i += 1
    return "".join(out)


def string_literals(text):
    """Every string literal of a Rust source (raw ones first, then plain)."""
    found = [m.group(2) for m in RAW.finditer(text)]
    rest = RAW.sub('""', text)
    found += [unescape(m.group(1)) for m in PLAIN.finditer(rest)]
    return found


def json_macros(text):
    """The `json!({...})` / `json!([...])` bodies of a Rust source that are
    plain JSON once raw strings are turned into JSON strings and trailing
    commas dropped (ones with Rust expressions inside are skipped)."""
    out = []
    for m in re.finditer(r"json!\s*\(", text):
        i = m.end()
        depth, j, in_str = 0, i, None
        while j < len(text):
            c = text[j]
            if in_str:
                if in_str == '"' and c == "\\":
                    j += 2
                    continue
                if text.startswith(in_str, j):
                    j += len(in_str)
                    in_str = None
                    continue
            else:
                r = re.match(r'r(#+)"', text[j:])
                if r:
                    in_str = '"' + r.group(1)
                    j += len(r.group(0))
                    continue
                if c == '"':
                    in_str = '"'
                elif c in "([{":
                    depth += 1
                elif c in ")]}":
                    if depth == 0:
                        break
                    depth -= 1
            j += 1
        body = text[i:j]
        body = RAW.sub(lambda r: json.dumps(r.group(2)), body)
        body = re.sub(r",(\s*[}\]])", r"\1", body)
        try:
            out.append(json.loads(body))
        except ValueError:
            pass
    return out


def walk_objects(v):
    if isinstance(v, dict):
        yield v
        for x in v.values():
            yield from walk_objects(x)
    elif isinstance(v, list):
        for x in v:
            yield from walk_objects(x)


class Seeds:
    def __init__(self, target):
        self.dir = os.path.join(SEEDS, target)
        os.makedirs(self.dir, exist_ok=True)
        for f in os.listdir(self.dir):
            if f.startswith("gen_"):
                os.remove(os.path.join(self.dir, f))
        self.seen = {read_bytes(os.path.join(self.dir, f)) for f in os.listdir(self.dir)}
        self.n = 0

    def add(self, data, ext):
        if isinstance(data, str):
            data = data.encode()
        if not data or len(data) > MAX_LEN or data in self.seen:
            return
        self.seen.add(data)
        name = "gen_%s.%s" % (hashlib.sha1(data).hexdigest()[:12], ext)
        with open(os.path.join(self.dir, name), "wb") as f:
            f.write(data)
        self.n += 1


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def zip_of(entries, method=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for e in entries:
            name, data = e[0], e[1]
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = method
            if len(e) > 2:
                info.external_attr = e[2] << 16
                info.create_system = 3
            z.writestr(info, data)
    return buf.getvalue()


def gen_zips():
    s = Seeds("zip")
    manifest = json.dumps({"name": "p", "version": "1.0.0", "kind": "sink"}).encode()
    full = json.dumps(
        {
            "version": "0.1.0",
            "kind": "source",
            "description": "a seed",
            "permissions": {"dirs": ["/tmp"]},
            "properties": [{"name": "x", "default": 1}],
            "limits": {"memoryMib": 16, "callTimeoutMs": 100},
            "about": {"author": "t"},
        }
    ).encode()
    yaml = b"default:\n  interval: 1000\n  topic: t/1\n"
    cases = [
        [("p.wasm", COMPONENT), ("p.json", manifest)],
        [("p.wasm", COMPONENT), ("p.json", full), ("p.yaml", yaml)],
        [("dir/", b""), ("p.wasm", COMPONENT), ("p.json", manifest), ("README.md", b"x")],
        [("../p.wasm", COMPONENT), ("p.json", manifest)],
        [("p.wasm", COMPONENT), ("../../etc/p.json", manifest)],
        [("/etc/p.wasm", COMPONENT), ("p.json", manifest)],
        [("C:/p.wasm", COMPONENT)],
        [("a\\..\\p.wasm", COMPONENT)],
        [("p.wasm", b"target", stat.S_IFLNK | 0o777), ("p.json", manifest)],
        [("p.wasm", COMPONENT)],
        [("q.wasm", COMPONENT), ("q.json", manifest)],
        [("p.wasm", CORE_MODULE), ("p.json", manifest)],
        [("p.wasm", COMPONENT), ("p.json", b'{"version":"9.9.9","kind":"source"}')],
        [("p.wasm", COMPONENT), ("p.json", b'{"name":"other","version":"1","kind":"sink"}')],
        [("p.wasm", COMPONENT), ("p.json", manifest), ("p.yaml", b"a: [1, 2\n")],
    ]
    for entries in cases:
        s.add(zip_of(entries), "zip")
    s.add(zip_of(cases[1], zipfile.ZIP_DEFLATED), "zip")
    # A small bomb: 1 MiB of zeros deflated.
    s.add(zip_of([("p.wasm", COMPONENT + b"\0" * (1 << 20)), ("p.json", manifest)], zipfile.ZIP_DEFLATED), "zip")
    # Not zips: a bare component, a core module, an empty zip.
    s.add(COMPONENT, "wasm")
    s.add(CORE_MODULE, "wasm")
    s.add(zip_of([]), "zip")
    return s.n


def main():
    test_dirs = ("host", "tests/tests")
    literals, objects = [], []
    for path in rust_files(*test_dirs):
        text = read(path)
        literals += string_literals(text)
        objects += json_macros(text)
    # Rules written as strings (`r#"{"sql": ...}"#`) too.
    for lit in literals:
        if lit.lstrip().startswith("{"):
            try:
                objects.append(json.loads(lit))
            except ValueError:
                pass

    counts = {}
    tmpl = Seeds("template")
    for lit in literals:
        if "{{" in lit and "}}" in lit:
            tmpl.add(lit, "tmpl")
    for o in walk_objects(objects):
        for k, v in o.items():
            if isinstance(v, str) and "{{" in v:
                tmpl.add(v, "tmpl")
    counts["template"] = tmpl.n

    rules, props = Seeds("rule_json"), Seeds("props")
    sql = Seeds("sql")
    for o in walk_objects(objects):
        if isinstance(o.get("sql"), str) and ("actions" in o or "id" in o):
            rules.add(json.dumps(o), "json")
            sql.add(o["sql"], "sql")
        for a in o.get("actions", []) if isinstance(o.get("actions"), list) else []:
            if isinstance(a, dict):
                for p in a.values():
                    if isinstance(p, dict):
                        props.add(json.dumps(p), "json")
    # Objects of the sink and connector tests are props.
    for path in rust_files("host/src/runtime/sink", "host/crates/connectors/src"):
        for o in json_macros(read(path)):
            if isinstance(o, dict):
                props.add(json.dumps(o), "json")
    counts.update(rule_json=rules.n, props=props.n, sql=sql.n)
    counts["zip"] = gen_zips()
    for k, v in sorted(counts.items()):
        print("%-10s %d generated seeds" % (k, v))


if __name__ == "__main__":
    sys.exit(main())
