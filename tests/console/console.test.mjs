// Browser test of Oort's web console: Playwright (playwright-core) driving
// Debian's Chromium against a running server. Run by tests/tests/console.rs,
// which starts the server and sets:
//   OORT_CONSOLE_URL     the server's base URL (http://127.0.0.1:PORT)
//   OORT_CONSOLE_TOKEN   the server's API token ('' when it has none)
//   OORT_CONSOLE_PLUGIN  a source plugin component (.wasm) to upload, named
//                        after its file (not installed yet)
//   OORT_CONSOLE_SHOTS   where screenshots go (default: a new temp dir)
//   CHROMIUM             the browser (default /usr/bin/chromium)
// Every wait is on a condition (Playwright's auto-waiting locators), never a
// fixed sleep. Exit status 0 when every step passed.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = process.env.OORT_CONSOLE_URL;
if (!base) {
  console.error('OORT_CONSOLE_URL is not set');
  process.exit(2);
}
const token = process.env.OORT_CONSOLE_TOKEN || '';
const pluginFile = process.env.OORT_CONSOLE_PLUGIN || '';
const shots = process.env.OORT_CONSOLE_SHOTS || mkdtempSync(join(tmpdir(), 'oort-console-shots-'));
mkdirSync(shots, { recursive: true });

let step = '';
const log = (s) => { step = s; console.log('step: ' + s); };
function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium' });
const pageErrors = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 820 }, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (e) => pageErrors.push('page error: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) pageErrors.push('console: ' + m.text());
  });
  page.on('dialog', (d) => d.accept());
  const shot = (name) => page.screenshot({ path: join(shots, name), fullPage: true });
  const flashOk = (re) => page.locator('#flash .msg.ok', { hasText: re }).waitFor();
  const flashErr = (re) => page.locator('#flash .msg.error', { hasText: re }).waitFor();
  const nav = (name) => page.locator('#nav a', { hasText: name }).click();
  // Set-up the console does not do itself, straight through the REST API.
  const api = async (method, path, body) => {
    const headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const r = await fetch(base + path, { method, headers, body: body && JSON.stringify(body) });
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  };

  log('open the console');
  const resp = await page.goto(base + '/console/');
  check(resp && resp.status() === 200, 'GET /console/ is 200');
  await page.locator('#rules-table').waitFor();
  await page.locator('#server-info', { hasText: /Oort \d/ }).waitFor();

  if (token) {
    log('without the token the rule list shows the 401');
    await page.locator('.poll-error .msg.error', { hasText: '401' }).waitFor();
    log('set the token');
    await page.fill('#token', token);
    await page.click('#token-save');
    await page.locator('#token-state', { hasText: 'token set' }).waitFor();
  }
  await page.waitForFunction(() => document.querySelector('.poll-error') && document.querySelector('.poll-error').childElementCount === 0);

  log('streams: an invalid statement shows the server error');
  await nav('Streams');
  await page.fill('#stream-sql', 'CREATE STREAMX bad () WITH (DATASOURCE="x")');
  await page.click('#stream-submit');
  await page.locator('#stream-error .msg.error', { hasText: /STREAMX/ }).waitFor();

  log('streams: create');
  await page.fill('#stream-sql', 'CREATE STREAM demo (temperature FLOAT, dev STRING) WITH (DATASOURCE="console_demo", TYPE="memory", FORMAT="JSON")');
  await page.click('#stream-submit');
  await flashOk(/demo is created/);
  await page.locator('#streams-table tr[data-name="demo"]').waitFor();

  log('streams: show');
  await page.click('#streams-table tr[data-name="demo"] button[data-act="show"]');
  await page.locator('#stream-show .statement', { hasText: 'console_demo' }).waitFor();

  log('streams: edit');
  await page.click('#streams-table tr[data-name="demo"] button[data-act="edit"]');
  await page.locator('#stream-form-title', { hasText: 'Edit demo' }).waitFor();
  // The statement is read from the export document after the form opens.
  await page.waitForFunction(() => document.querySelector('#stream-sql')?.value?.includes('console_demo'));
  const stmt = await page.inputValue('#stream-sql');
  check(stmt.includes('console_demo'), 'the edit form holds the statement: ' + stmt);
  await page.fill('#stream-sql', stmt.replace('console_demo', 'console_demo2'));
  await page.click('#stream-submit');
  await flashOk(/demo is replaced/);
  await page.click('#streams-table tr[data-name="demo"] button[data-act="show"]');
  await page.locator('#stream-show .statement', { hasText: 'console_demo2' }).waitFor();

  log('rule editor: validation error while typing');
  await nav('New rule');
  await page.fill('#rule-id', 'r1');
  await page.fill('#rule-sql', 'SELECT temperature FROM nosuchstream WHERE');
  await page.locator('#validate-msg[data-state="error"]', { hasText: /Invalid: .*found EOF/ }).waitFor();
  await shot('rule-editor.png');

  log('rule editor: valid SQL');
  await page.fill('#rule-sql', 'SELECT temperature, dev FROM demo WHERE temperature > 20');
  await page.locator('#validate-msg[data-state="ok"]', { hasText: /Valid/ }).waitFor();
  log('rule editor: a bad actions JSON is reported by the Validate button');
  await page.fill('#rule-actions', '[{"log": {}');
  await page.click('#rule-validate');
  await page.locator('#validate-msg[data-state="error"]', { hasText: /Actions is not valid JSON/ }).waitFor();
  await page.fill('#rule-actions', '[{"log": {}}, {"memory": {"topic": "console_out"}}]');
  await page.click('#rule-validate');
  await page.locator('#validate-msg[data-state="ok"]').waitFor();

  log('rule editor: create');
  await page.click('#rule-save');
  await page.waitForURL(/#\/rules\/r1$/);
  await flashOk(/r1 was created/);

  log('rule detail: topology and metrics');
  await page.locator('#rule-summary [data-key="status"]', { hasText: 'running' }).waitFor();
  const topo = page.locator('#rule-topo svg');
  await topo.locator('g.node[data-node^="source_demo"]').waitFor();
  await topo.locator('g.node[data-node^="sink_log_0"]').waitFor();
  await topo.locator('g.node[data-node^="sink_memory_1"]').waitFor();
  const nodes = await topo.locator('g.node').evaluateAll((els) => els.map((e) => e.getAttribute('data-node')));
  check(nodes.some((n) => n.startsWith('op_')), 'an operator node in ' + nodes.join(', '));
  const edges = await topo.locator('path.edge').count();
  check(edges >= nodes.length - 1, `edges (${edges}) connect the ${nodes.length} nodes`);
  // Columns by depth: the source left of every operator, operators left of the sinks.
  const xOf = async (sel) => (await topo.locator(sel).first().boundingBox()).x;
  const xs = await xOf('g.node.source'), xo = await xOf('g.node.op'), xk = await xOf('g.node.sink');
  check(xs < xo && xo < xk, `layout by depth: source ${xs} < op ${xo} < sink ${xk}`);
  await page.locator('#rule-metrics tr[data-metric="records_in_total"]').waitFor();

  log('rule detail: live metrics (a simulator rule feeds the demo stream\'s memory topic)');
  await api('POST', '/streams', { sql: 'CREATE STREAM feed () WITH (DATASOURCE="feed", TYPE="simulator", FORMAT="JSON")' });
  await api('POST', '/rules', { id: 'feeder', sql: 'SELECT temperature, "dev-1" AS dev FROM feed', actions: [{ memory: { topic: 'console_demo2' } }] });
  // Every node of r1 has counted records (the table refreshes itself).
  await page.waitForFunction(() => {
    const row = document.querySelector('#rule-metrics tr[data-metric="records_in_total"]');
    const cells = row ? [...row.querySelectorAll('td')] : [];
    return cells.length > 0 && cells.every((c) => Number(c.textContent) > 0);
  });
  await shot('rule-detail.png');

  log('rule detail: stop and start');
  await page.click('#view > .row button[data-act="stop"]');
  await flashOk(/r1 was stopped/);
  await page.locator('#rule-summary [data-key="status"]', { hasText: 'stopped' }).waitFor();
  await page.click('#view > .row button[data-act="start"]');
  await flashOk(/r1 was started/);
  await page.locator('#rule-summary [data-key="status"]', { hasText: 'running' }).waitFor();

  log('rules list: live status, stop and start');
  await nav('Rules');
  const row = page.locator('#rules-table tr[data-id="r1"]');
  await row.locator('.status', { hasText: 'running' }).waitFor();
  await row.locator('button[data-act="stop"]').click();
  await row.locator('.status', { hasText: /^stopped$/ }).waitFor();
  await row.locator('button[data-act="start"]').click();
  await row.locator('.status', { hasText: 'running' }).waitFor();
  await shot('rules.png');

  log('rule edit: the form is filled from the rule');
  await row.locator('a', { hasText: 'Edit' }).click();
  await page.waitForFunction(() => document.querySelector('#rule-sql')?.value?.includes('temperature > 20'));
  await page.fill('#rule-sql', 'SELECT temperature, dev FROM demo WHERE temperature > 30');
  await page.click('#rule-save');
  await flashOk(/r1 was updated/);

  log('plugins: built-in list');
  await nav('Plugins');
  await page.locator('#plugins-sinks tr[data-name="discard"]').waitFor();
  await page.locator('#plugins-sinks tr[data-name="discard"] .badge', { hasText: 'installed' }).waitFor();
  await page.locator('#plugins-sinks tr[data-name="discard"] .badge', { hasText: 'built-in' }).waitFor();

  log('plugins: install from a URI that does not exist shows the error');
  await page.fill('#install-name', 'console_missing');
  await page.fill('#install-uri', 'file:///nonexistent/console_missing.zip');
  await page.click('#install-submit');
  await flashErr(/console_missing/);

  if (pluginFile) {
    log('plugins: upload a package with progress (named after the file)');
    await page.selectOption('#upload-kind', 'sources');
    await page.setInputFiles('#upload-file', pluginFile);
    await page.click('#upload-submit');
    await page.locator('#upload-percent[data-done="ok"]').waitFor();
    const pv = await page.locator('#upload-progress').evaluate((p) => p.value);
    check(pv === 100, 'progress bar at 100, found ' + pv);
    await flashOk(/random is created/);
    await page.locator('#plugins-sources tr[data-name="random"] .badge', { hasText: 'installed' }).waitFor();
  }
  await shot('plugins.png');
  if (pluginFile) {
    log('plugins: delete the uploaded one');
    await page.click('#plugins-sources tr[data-name="random"] button[data-act="delete"]');
    await flashOk(/random is deleted/);
    await page.locator('#plugins-sources tr[data-name="random"]').waitFor({ state: 'detached' });
  }

  log('import/export: export');
  await nav('Import');
  await page.click('#export-show');
  await page.waitForFunction(() => document.querySelector('#export-doc')?.value?.includes('console_demo2'));
  const exported = JSON.parse(await page.inputValue('#export-doc'));
  check(exported.rules && exported.rules.r1, 'the export holds rule r1');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export-download')]);
  check(dl.suggestedFilename() === 'oort_export.json', 'download name ' + dl.suggestedFilename());

  log('import/export: an invalid document shows the error');
  await page.fill('#import-doc', '{"streams": {"broken": "CREATE STREAM broken ("}}');
  await page.click('#import-submit');
  await page.locator('#import-result [data-state="error"]', { hasText: /broken/ }).waitFor();

  log('import/export: import a document loaded from a file');
  const doc = {
    streams: { imported: 'CREATE STREAM imported (a BIGINT) WITH (DATASOURCE="console_imp", TYPE="memory", FORMAT="JSON")' },
    rules: { r_imported: JSON.stringify({ id: 'r_imported', sql: 'SELECT a FROM imported', actions: [{ log: {} }] }) },
  };
  await page.setInputFiles('#import-file', { name: 'doc.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(doc, null, 2)) });
  await page.waitForFunction(() => document.querySelector('#import-doc')?.value?.includes('r_imported'));
  await page.click('#import-submit');
  await page.locator('#import-result [data-state="ok"]').waitFor();
  await page.locator('#import-status [data-state="clean"]').waitFor();
  await shot('import-export.png');

  log('rules list: the imported rule runs; delete r1');
  await nav('Rules');
  await page.locator('#rules-table tr[data-id="r_imported"] .status', { hasText: 'running' }).waitFor();
  await page.click('#rules-table tr[data-id="r1"] button[data-act="delete"]');
  await flashOk(/r1 is dropped/);
  await page.locator('#rules-table tr[data-id="r1"]').waitFor({ state: 'detached' });

  log('streams: the imported stream is listed; drop demo');
  await nav('Streams');
  await page.locator('#streams-table tr[data-name="imported"]').waitFor();
  await page.click('#streams-table tr[data-name="demo"] button[data-act="drop"]');
  await flashOk(/demo is dropped/);
  await page.locator('#streams-table tr[data-name="demo"]').waitFor({ state: 'detached' });

  check(pageErrors.length === 0, 'no page errors or CSP violations:\n' + pageErrors.join('\n'));
  console.log('console test passed; screenshots in ' + shots);
} catch (e) {
  console.error('FAILED at step "' + step + '": ' + (e && e.stack ? e.stack : e));
  if (pageErrors.length) console.error(pageErrors.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
