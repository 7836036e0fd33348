// Turns src/plugin.js into the component {{.name}}.wasm with componentize-js.
// Usage: node build.mjs   (after `npm install`)
import { writeFile } from 'node:fs/promises';
import { componentize } from '@bytecodealliance/componentize-js';

const { component } = await componentize({
  sourcePath: 'src/plugin.js',
  witPath: 'wit',
  worldName: 'plugin',
  // No fetch(): to send HTTP requests, drop 'http' here and import
  // wasi:http/outgoing-handler in wit/world.wit (the host allows the URLs
  // the plugin's outbound grants cover; docs/plugins/contract.md).
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile('{{.name}}.wasm', component);
