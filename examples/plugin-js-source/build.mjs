// Turns src/jscounter.js into a component with componentize-js's JS API
// (the `jco componentize` CLI is not used: it failed on paths in our tests).
// Usage: node build.mjs <node-toolchain-dir> <wit-dir> <out.wasm>
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const [nodeDir, witDir, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: node build.mjs <node-toolchain-dir> <wit-dir> <out.wasm>');
  process.exit(2);
}
// The package is ESM-only (exports.import), so resolve its entry by hand.
const pkgDir = join(resolve(nodeDir), 'node_modules', '@bytecodealliance', 'componentize-js');
const pkg = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8'));
const entry = pkg.exports?.import ?? pkg.exports?.['.']?.import ?? pkg.main;
const { componentize } = await import(pathToFileURL(join(pkgDir, entry)).href);
const here = dirname(fileURLToPath(import.meta.url));
const { component } = await componentize({
  sourcePath: join(here, 'src', 'jscounter.js'),
  witPath: resolve(witDir),
  worldName: 'jscounter',
  // No fetch()/HTTP: the host links no wasi:http, and a component importing
  // it would fail to install.
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(out, component);
