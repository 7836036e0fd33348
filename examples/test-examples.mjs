// Behaviour tests of the example plugins, run by test-examples.sh after the
// builds. Each component is transpiled with jco to JS + core wasm and run in
// Node.js with WASI from @bytecodealliance/preview2-shim and a fake
// `oort:connector/host` that records log lines. This checks what the plugins
// do through their real WIT exports; it does not replace the end-to-end test
// through Oort's server (wasmtime host).
//
// Usage: node test-examples.mjs <node-toolchain-dir> <examples-dir> [name...]
// Prints one line per check and closes with "N passed, N failed".
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [nodeDir, examplesDir, ...only] = process.argv.slice(2);
if (!examplesDir) {
  console.error('usage: node test-examples.mjs <node-toolchain-dir> <examples-dir> [name...]');
  process.exit(2);
}
const modules = join(resolve(nodeDir), 'node_modules');
const jcoBin = join(modules, '.bin', 'jco');
const wasi = await import(
  pathToFileURL(join(modules, '@bytecodealliance', 'preview2-shim', 'dist', 'nodejs', 'index.js')).href
);

let passed = 0;
let failed = 0;
const check = (name, ok, detail = '') => {
  if (ok) {
    passed += 1;
    console.log(`  ok   ${name}`);
  } else {
    failed += 1;
    console.log(`  FAIL ${name}${detail ? `: ${detail}` : ''}`);
  }
};
const eq = (name, got, want) => {
  const g = JSON.stringify(got, (_, v) => (typeof v === 'bigint' ? `${v}n` : v));
  const w = JSON.stringify(want, (_, v) => (typeof v === 'bigint' ? `${v}n` : v));
  check(name, g === w, `got ${g}, want ${w}`);
};
// The `err` payload of a call that must fail, or undefined if it succeeded.
const errOf = (f) => {
  try {
    f();
    return undefined;
  } catch (e) {
    return e && Object.prototype.hasOwnProperty.call(e, 'payload') ? e.payload : { thrown: String(e) };
  }
};

const camel = (s) => s.replace(/-([a-z])/g, (_, c) => c.toUpperCase());

// Transpiles and instantiates `<dir>/<name>.wasm`; returns its export and the log.
async function load(dir, name, iface) {
  const out = mkdtempSync(join(tmpdir(), `oort-${name}-`));
  try {
    execFileSync(jcoBin, ['transpile', join(dir, `${name}.wasm`), '-o', out, '--instantiation', 'async', '-q', '--no-typescript'], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const mod = await import(pathToFileURL(join(out, `${name}.js`)).href);
    const logs = [];
    const imports = new Proxy(
      {},
      {
        get(_, key) {
          if (typeof key !== 'string') return undefined;
          if (key.startsWith('oort:connector/host')) return { log: (level, message) => logs.push({ level, message }) };
          if (key.startsWith('oort:connector/types')) return {};
          const m = /^wasi:([a-z-]+)\/([a-z-]+)(@.*)?$/.exec(key);
          return m ? wasi[m[1]]?.[camel(m[2])] : undefined;
        },
        has: () => true,
      },
    );
    const root = await mod.instantiate(async (p) => WebAssembly.compile(await readFile(join(out, p))), imports);
    return { api: root[iface] ?? root[`oort:connector/${iface}@0.1.0`], logs };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

const manifest = (dir, name) => JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8'));
const ctx = { ruleId: 'rule1', opId: 'sink_0', instanceIndex: 0 };
const enc = new TextEncoder();
const dec = new TextDecoder();
const msg = (s) => ({ payload: enc.encode(s), meta: [], timestampMs: undefined });

// Shared checks for `describe` against the package manifest.
function describeMatches(api, dir, name, kind) {
  const info = api.describe();
  const m = manifest(dir, name);
  eq(`${name}: describe().name matches ${name}.json`, info.name, m.name);
  eq(`${name}: describe().version matches ${name}.json`, info.version, m.version);
  eq(`${name}: manifest kind`, m.kind, kind);
  check(`${name}: properties schema is JSON`, (() => {
    try {
      JSON.parse(info.propertiesSchema ?? 'null');
      return true;
    } catch {
      return false;
    }
  })());
  eq(`${name}: asks for no permissions`, info.permissions, { outbound: [], dirs: [], env: [] });
}

const tests = {
  async pylog(dir) {
    const { api, logs } = await load(dir, 'pylog', 'sink');
    describeMatches(api, dir, 'pylog', 'sink');
    eq('pylog: validate({}) ok', errOf(() => api.validate('{}')), undefined);
    eq('pylog: unknown keys ignored', errOf(() => api.validate('{"format":"json","sendSingle":true}')), undefined);
    eq('pylog: bad level is a config error', errOf(() => api.validate('{"level":"loud"}'))?.kind, 'config');
    eq('pylog: maxLen 0 is a config error', errOf(() => api.validate('{"maxLen":0}'))?.kind, 'config');
    eq('pylog: maxLen true is a config error', errOf(() => api.validate('{"maxLen":true}'))?.kind, 'config');
    eq('pylog: invalid JSON is a config error', errOf(() => api.validate('{nope'))?.kind, 'config');
    eq('pylog: open bad props fails', errOf(() => api.open(ctx, '[1]'))?.kind, 'config');

    api.open(ctx, '{"level":"warn","prefix":"> ","maxLen":8}');
    logs.length = 0;
    api.write([msg('{"a":1}'), msg('{"temperature":21.5}'), msg('h\u00e9')]);
    eq(
      'pylog: one log line per record, level and prefix applied, long payload cut',
      logs.map((l) => [l.level, l.message]),
      [
        ['warn', '> {"a":1}'],
        ['warn', '> {"temper... (12 more chars)'],
        ['warn', '> h\u00e9'],
      ],
    );
    api.close();
    const closing = logs.at(-1)?.message ?? '';
    check('pylog: close logs the counts', closing.includes('3 records in 1 batches') && closing.includes('rule1/sink_0'), closing);

    api.open(ctx, '{"failOn":"bad"}');
    logs.length = 0;
    const e = errOf(() => api.write([msg('good1'), msg('a bad one'), msg('good2')]));
    eq('pylog: failOn gives a partial failure', [e?.accepted, e?.error?.kind], [1, 'invalid-data']);
    eq('pylog: records before the failure were logged', logs.map((l) => l.message), ['good1']);
    api.write([msg('good2')]);
    api.flush();
    check('pylog: flush logs running counts', (logs.at(-1)?.message ?? '').includes('2 records, 2 batches'), logs.at(-1)?.message);
    api.close();
  },

  async jscounter(dir) {
    const { api, logs } = await load(dir, 'jscounter', 'source');
    describeMatches(api, dir, 'jscounter', 'source');
    eq('jscounter: validate({}) ok', errOf(() => api.validate('{"datasource":"x"}')), undefined);
    eq('jscounter: interval 0 is a config error', errOf(() => api.validate('{"interval":0}'))?.kind, 'config');
    eq('jscounter: interval "fast" is a config error', errOf(() => api.validate('{"interval":"fast"}'))?.kind, 'config');
    eq('jscounter: count -1 is a config error', errOf(() => api.validate('{"count":-1}'))?.kind, 'config');
    eq('jscounter: invalid JSON is a config error', errOf(() => api.validate('nope'))?.kind, 'config');
    eq('jscounter: read before open is internal', errOf(() => api.read(10, 10))?.kind, 'internal');

    // Nothing due for 10 s: read must block for its wait (100 ms), not spin.
    api.open(ctx, '{"interval":10000}', undefined);
    const t0 = performance.now();
    const idle = api.read(10, 100);
    const waited = performance.now() - t0;
    check('jscounter: idle read blocks for wait-ms (no spin)', waited >= 90 && waited < 1000, `${waited.toFixed(1)} ms`);
    eq('jscounter: idle read returns no message', idle, { tag: 'messages', val: [] });
    api.close();

    api.open({ ...ctx, opId: 'source_demo' }, '{"interval":50,"count":3,"datasource":"demo"}', undefined);
    eq('jscounter: no offset before the first message', api.offset(), undefined);
    const first = api.read(10, 500);
    const got = [];
    let outcome = first;
    let reads = 0;
    while (outcome.tag === 'messages' && reads < 50) {
      for (const m of outcome.val) got.push(JSON.parse(dec.decode(m.payload)));
      outcome = api.read(10, 200);
      reads += 1;
    }
    eq('jscounter: emits {"n":1..3} then ends', got, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    eq('jscounter: end-of-stream after count', outcome.tag, 'end-of-stream');
    eq('jscounter: offset is the last number', api.offset(), '3');
    const t1 = performance.now();
    const empty = api.read(10, 30);
    check('jscounter: read after end returns at once', performance.now() - t1 < 25 && empty.tag === 'end-of-stream');
    api.close();

    api.open(ctx, '{"interval":20,"field":"count","start":100}', '7');
    const r = api.read(1, 500);
    eq('jscounter: resumes after the committed offset, custom field', r.val.map((m) => JSON.parse(dec.decode(m.payload))), [{ count: 8 }]);
    check('jscounter: messages carry a timestamp', typeof r.val[0]?.timestampMs === 'bigint' && r.val[0].timestampMs > 0n);
    eq('jscounter: messages carry meta', r.val[0]?.meta, [['counter', 'jscounter']]);
    const short = api.read(10, 5);
    check('jscounter: read honours a short wait', short.tag === 'messages' && short.val.length <= 1);
    api.commit('8');
    api.close();
    check('jscounter: close logs', logs.some((l) => l.message.includes('closed rule1/source_demo#0 after 3 messages')));
  },

  async cupper(dir) {
    const { api, logs } = await load(dir, 'cupper', 'sink');
    describeMatches(api, dir, 'cupper', 'sink');
    eq('cupper: validate({}) ok', errOf(() => api.validate('{}')), undefined);
    eq('cupper: unknown keys ignored', errOf(() => api.validate('{"format":"json","x":{"y":[1,"]}"]}}')), undefined);
    eq('cupper: quiet must be a bool', errOf(() => api.validate('{"quiet":"yes"}'))?.kind, 'config');
    eq('cupper: prefix must be a string', errOf(() => api.validate('{"prefix":3}'))?.kind, 'config');
    eq('cupper: invalid JSON is a config error', errOf(() => api.validate('{"prefix":"x"'))?.kind, 'config');
    eq('cupper: not an object is a config error', errOf(() => api.validate('[]'))?.kind, 'config');
    eq('cupper: write before open is internal', errOf(() => api.write([msg('x')]))?.error?.kind, 'internal');

    api.open(ctx, '{"prefix":"up: ","format":"json"}');
    logs.length = 0;
    api.write([msg('{"name":"abc"}'), msg('mixed Case 123')]);
    eq(
      'cupper: logs each payload in upper case with the prefix',
      logs.map((l) => [l.level, l.message]),
      [
        ['info', 'up: {"NAME":"ABC"}'],
        ['info', 'up: MIXED CASE 123'],
      ],
    );
    api.flush();
    eq('cupper: flush logs the byte count', logs.at(-1)?.message, 'cupper: 2 records, 28 bytes');
    api.close();
    check('cupper: close logs totals', (logs.at(-1)?.message ?? '').includes('2 records, 28 bytes'), logs.at(-1)?.message);

    eq('cupper: maxLen 0 is a config error', errOf(() => api.validate('{"maxLen":0}'))?.kind, 'config');
    eq('cupper: maxLen 1.5 is a config error', errOf(() => api.validate('{"maxLen":1.5}'))?.kind, 'config');
    eq('cupper: trailing garbage is a config error', errOf(() => api.validate('{"quiet":true} x'))?.kind, 'config');
    const deep = '{"x":' + '['.repeat(100) + ']'.repeat(100) + '}';
    eq('cupper: deep nesting is refused, not a crash', errOf(() => api.validate(deep))?.kind, 'config');
    api.open(ctx, '{"prefix":"\\u00e9\\ud83d\\ude00 ","maxLen":5}');
    logs.length = 0;
    api.write([
      { payload: new Uint8Array([0x61, 0xff, 0x62]), meta: [], timestampMs: undefined },
      msg('abcdefgh'),
      msg('\u00e9\u00e9\u00e9'),
    ]);
    eq(
      'cupper: JSON escapes in prefix, invalid UTF-8 replaced, maxLen cuts at a character boundary',
      logs.map((l) => l.message),
      ['\u00e9\u{1F600} A\uFFFDB', '\u00e9\u{1F600} ABCDE... (3 more bytes)', '\u00e9\u{1F600} \u00e9\u00e9... (2 more bytes)'],
    );
    api.close();

    api.open(ctx, '{"quiet":true}');
    logs.length = 0;
    api.write([msg('aaaa'), msg(''), msg('bb')]);
    eq('cupper: quiet logs nothing per record', logs.length, 0);
    api.close();
    eq('cupper: quiet still counts bytes', logs.at(-1)?.message, 'cupper: closed rule1/sink_0: 3 records, 6 bytes');
  },
};

const dirs = { pylog: 'plugin-python-sink', jscounter: 'plugin-js-source', cupper: 'plugin-c-sink' };
for (const [name, run] of Object.entries(tests)) {
  if (only.length > 0 && !only.includes(name)) continue;
  console.log(`${name}:`);
  try {
    await run(join(resolve(examplesDir), dirs[name]));
  } catch (e) {
    check(`${name}: ran without an unexpected error`, false, e?.stack ?? String(e));
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
