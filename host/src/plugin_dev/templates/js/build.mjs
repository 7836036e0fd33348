// Turns src/plugin.js into the component {{.name}}.wasm with componentize-js.
// Usage: node build.mjs   (after `npm install`)
import { writeFile } from 'node:fs/promises';
import { componentize } from '@bytecodealliance/componentize-js';

const { component } = await componentize({
  sourcePath: 'src/plugin.js',
  witPath: 'wit',
  worldName: 'plugin',
  // No fetch()/HTTP: the host does not link wasi:http, and a component that
  // imports it would be refused at install.
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile('{{.name}}.wasm', component);
