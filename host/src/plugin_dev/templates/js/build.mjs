// Turns src/plugin.js into the component {{.name}}.wasm with componentize-js.
// Usage: node build.mjs   (after `npm install`)
import { writeFile } from 'node:fs/promises';
import { componentize } from '@bytecodealliance/componentize-js';

// fetch(): off. To send HTTP requests, set FETCH = true and list where they
// go in the manifest's permissions.outbound ({{.name}}.json, e.g.
// "http://*:*"); the operator grants the addresses at install. Nothing to
// add to wit/world.wit: componentize-js imports wasi:http itself. See
// README.md, "Sending HTTP requests (fetch)".
const FETCH = false;

const { component } = await componentize({
  sourcePath: 'src/plugin.js',
  witPath: 'wit',
  worldName: 'plugin',
  disableFeatures: FETCH ? ['fetch-event'] : ['http', 'fetch-event'],
});
await writeFile('{{.name}}.wasm', component);
