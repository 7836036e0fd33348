// Oort web console: the rules list, a rule's detail (status, metrics,
// topology drawn as SVG) and the rule editor.
import {
  TOKEN_KEY, $, h, append, clear, enc, token, ApiError, headers, errorFrom, api, flash, flashError, act, statusClass, badge, fmtTime, parseJsonField, poll, download, nav, view,
} from './lib.js';

// ---------- rules list ----------

function ruleButtons(id, after) {
  const op = (verb) => act(() => api('POST', '/rules/' + enc(id) + '/' + verb)).then(after);
  return [
    h('button', { type: 'button', 'data-act': 'start', onclick: () => op('start') }, 'Start'),
    ' ',
    h('button', { type: 'button', 'data-act': 'stop', onclick: () => op('stop') }, 'Stop'),
    ' ',
    h('button', { type: 'button', 'data-act': 'restart', onclick: () => op('restart') }, 'Restart'),
  ];
}

function deleteRule(id, after) {
  if (!confirm('Delete rule ' + id + '?')) return;
  act(() => api('DELETE', '/rules/' + enc(id))).then(after);
}

function rulesPage(v) {
  const err = h('div', { class: 'poll-error' });
  const body = h('tbody', {});
  const empty = h('p', { class: 'muted', hidden: true }, 'No rules yet. ', h('a', { href: '#/rule-new' }, 'Create one'), '.');
  append(v, [
    h('div', { class: 'row' }, h('h1', {}, 'Rules'), h('span', { class: 'spacer' }),
      h('a', { href: '#/rule-new' }, h('button', { type: 'button', class: 'primary' }, 'New rule'))),
    err,
    h('div', { class: 'table-wrap' }, h('table', { id: 'rules-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Id'), h('th', {}, 'Name'), h('th', {}, 'Status'), h('th', {}, 'Tags'), h('th', {}, 'Actions'))),
      body)),
    empty,
  ]);
  const rows = new Map();
  const refresh = async () => {
    let list;
    try {
      list = await api('GET', '/rules');
      clear(err);
    } catch (e) {
      clear(err).appendChild(h('div', { class: 'msg error' }, 'Cannot list rules: ' + e.message));
      return;
    }
    const seen = new Set();
    for (const r of list) {
      seen.add(r.id);
      let row = rows.get(r.id);
      if (!row) {
        const status = h('td', { class: 'status' });
        row = {
          status,
          name: h('td', {}),
          tags: h('td', {}),
          tr: null,
        };
        row.tr = h('tr', { 'data-id': r.id },
          h('td', {}, h('a', { href: '#/rules/' + enc(r.id) }, r.id)),
          row.name, status, row.tags,
          h('td', { class: 'actions' }, ruleButtons(r.id, refresh), ' ',
            h('a', { href: '#/rules/' + enc(r.id) + '/edit' }, h('button', { type: 'button' }, 'Edit')), ' ',
            h('button', { type: 'button', class: 'danger', 'data-act': 'delete', onclick: () => deleteRule(r.id, refresh) }, 'Delete')));
        rows.set(r.id, row);
      }
      if (row.statusText !== r.status) { clear(row.status).appendChild(badge(r.status)); row.statusText = r.status; }
      row.name.textContent = r.name || '';
      row.tags.textContent = (r.tags || []).join(', ');
      body.appendChild(row.tr); // keeps the server's order (sorted by id)
    }
    for (const [id, row] of rows) if (!seen.has(id)) { row.tr.remove(); rows.delete(id); }
    empty.hidden = list.length > 0;
  };
  poll(refresh, 2000);
}

// ---------- rule detail: status, metrics, topology ----------

/** Splits `source_demo_0_records_in_total` into node and metric. */
function splitMetric(key) {
  const m = /^((?:source|op|sink)_.*?_\d+)_([a-z][a-z_]*)$/.exec(key);
  return m ? [m[1], m[2]] : null;
}

function ruleDetail(v, id) {
  const head = h('div', { class: 'row' });
  const err = h('div', {});
  const summary = h('div', { class: 'panel', id: 'rule-summary' });
  const metrics = h('div', { class: 'table-wrap', id: 'rule-metrics' });
  const topo = h('div', { class: 'panel topo', id: 'rule-topo' });
  const sqlBox = h('div', {});
  const refreshAll = () => { refreshStatus(); refreshTopo(); };
  append(head, [h('h1', {}, 'Rule ', h('code', {}, id)), h('span', { class: 'spacer' }),
    ruleButtons(id, refreshAll), ' ',
    h('a', { href: '#/rules/' + enc(id) + '/edit' }, h('button', { type: 'button' }, 'Edit')), ' ',
    h('button', { type: 'button', class: 'danger', onclick: () => deleteRule(id, () => { location.hash = '#/rules'; }) }, 'Delete')]);
  append(v, [h('p', {}, h('a', { href: '#/rules' }, '← all rules')), head, err, summary,
    h('h2', {}, 'Topology'), topo, h('h2', {}, 'Metrics'), metrics, h('h2', {}, 'Definition'), sqlBox]);

  const refreshStatus = async () => {
    let st;
    try {
      st = await api('GET', '/v2/rules/' + enc(id) + '/status');
      clear(err);
    } catch (e) {
      clear(err).appendChild(h('div', { class: 'msg error' }, 'Cannot read the status: ' + e.message));
      return;
    }
    const nodes = new Map();
    const top = [];
    for (const [k, val] of Object.entries(st)) {
      const s = splitMetric(k);
      if (!s) { top.push([k, val]); continue; }
      if (!nodes.has(s[0])) nodes.set(s[0], new Map());
      nodes.get(s[0]).set(s[1], val);
    }
    clear(summary);
    for (const [k, val] of top) {
      const shown = k === 'status' ? badge(val) : (/Timestamp$/.test(k) ? fmtTime(val) : (typeof val === 'object' ? JSON.stringify(val) : String(val)));
      summary.appendChild(h('div', { class: 'row' }, h('strong', {}, k + ':'), h('span', { 'data-key': k }, shown)));
    }
    const names = [...nodes.keys()];
    const metricNames = [];
    for (const m of nodes.values()) for (const k of m.keys()) if (!metricNames.includes(k)) metricNames.push(k);
    clear(metrics);
    if (!names.length) { metrics.appendChild(h('p', { class: 'muted', style: null }, ' No node metrics (the rule is not running).')); return; }
    metrics.appendChild(h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'metric'), names.map((n) => h('th', {}, n)))),
      h('tbody', {}, metricNames.map((mn) => h('tr', { 'data-metric': mn }, h('th', {}, mn),
        names.map((n) => {
          const x = nodes.get(n).get(mn);
          const num = typeof x === 'number';
          const shown = x === undefined ? '' : (/_time$|last_invocation/.test(mn) && num ? fmtTime(x) : x);
          return h('td', { class: num ? 'num' : '' }, shown);
        }))))));
  };

  const refreshTopo = async () => {
    try {
      const t = await api('GET', '/rules/' + enc(id) + '/topo');
      clear(topo).appendChild(drawTopo(t));
    } catch (e) {
      clear(topo).appendChild(h('div', { class: 'msg error' }, 'Cannot read the topology: ' + e.message));
    }
  };
  const loadDef = async () => {
    try {
      const text = await api('GET', '/rules/' + enc(id), undefined, { raw: true });
      let pretty = text;
      try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* as is */ }
      clear(sqlBox).appendChild(h('pre', {}, pretty));
    } catch (e) {
      clear(sqlBox).appendChild(h('div', { class: 'msg error' }, 'Cannot read the rule: ' + e.message));
    }
  };
  refreshTopo();
  loadDef();
  poll(refreshStatus, 2000);
}

/** The rule's graph as SVG: nodes in columns by depth (longest path from a source). */
function drawTopo(t) {
  const edges = (t && t.edges) || {};
  const sources = (t && t.sources) || [];
  const all = [];
  const add = (n) => { if (!all.includes(n)) all.push(n); };
  sources.forEach(add);
  for (const [from, tos] of Object.entries(edges)) { add(from); (tos || []).forEach(add); }
  const depth = new Map(all.map((n) => [n, 0]));
  // Longest-path layering; bounded so a cycle cannot loop forever.
  for (let i = 0; i < all.length; i++) {
    let changed = false;
    for (const [from, tos] of Object.entries(edges)) {
      for (const to of tos || []) {
        if (depth.get(to) < depth.get(from) + 1) { depth.set(to, depth.get(from) + 1); changed = true; }
      }
    }
    if (!changed) break;
  }
  const cols = [];
  for (const n of all) { const d = depth.get(n); (cols[d] = cols[d] || []).push(n); }
  const W = 180, H = 36, GX = 70, GY = 22, PAD = 16;
  const longest = Math.max(1, ...all.map((n) => n.length));
  const w = Math.max(W, Math.min(320, longest * 7.4 + 20));
  const rowsMax = Math.max(1, ...cols.map((c) => (c || []).length));
  const width = PAD * 2 + cols.length * w + Math.max(0, cols.length - 1) * GX;
  const height = PAD * 2 + rowsMax * H + (rowsMax - 1) * GY;
  const pos = new Map();
  cols.forEach((c, ci) => (c || []).forEach((n, ri) => {
    const colH = c.length * H + (c.length - 1) * GY;
    const y0 = (height - colH) / 2;
    pos.set(n, { x: PAD + ci * (w + GX), y: y0 + ri * (H + GY) });
  }));
  const svg = h('svg', { xmlns: 'http://www.w3.org/2000/svg', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'rule topology' },
    h('defs', {}, h('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse' },
      h('path', { d: 'M 0 0 L 10 5 L 0 10 z' }))));
  for (const [from, tos] of Object.entries(edges)) {
    for (const to of tos || []) {
      const a = pos.get(from), b = pos.get(to);
      if (!a || !b) continue;
      const x1 = a.x + w, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
      const mx = (x1 + x2) / 2;
      svg.appendChild(h('path', { class: 'edge', 'data-from': from, 'data-to': to, d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`, 'marker-end': 'url(#arrow)' }));
    }
  }
  for (const n of all) {
    const p = pos.get(n);
    const kind = n.startsWith('source_') ? 'source' : n.startsWith('sink_') ? 'sink' : 'op';
    svg.appendChild(h('g', { class: 'node ' + kind, 'data-node': n, transform: `translate(${p.x} ${p.y})` },
      h('title', {}, n),
      h('rect', { width: w, height: H, rx: 6, ry: 6 }),
      h('text', { x: w / 2, y: H / 2 }, n)));
  }
  if (!all.length) return h('p', { class: 'muted' }, 'No topology.');
  return svg;
}

// ---------- rule editor ----------

function ruleEditor(v, id) {
  const editing = id !== null;
  let loaded = {};
  const idIn = h('input', { id: 'rule-id', value: id || '', disabled: editing, placeholder: 'rule1', pattern: '[a-zA-Z0-9_-]+' });
  const nameIn = h('input', { id: 'rule-name', placeholder: '(optional)' });
  const sqlIn = h('textarea', { id: 'rule-sql', class: 'code', rows: 5, spellcheck: 'false', placeholder: 'SELECT * FROM demo' });
  const actIn = h('textarea', { id: 'rule-actions', class: 'code', rows: 5, spellcheck: 'false', value: '[\n  {"log": {}}\n]' });
  const optIn = h('textarea', { id: 'rule-options', class: 'code', rows: 3, spellcheck: 'false', value: '{}' });
  const msg = h('div', { id: 'validate-msg', class: 'validate' });
  const save = h('button', { type: 'submit', class: 'primary', id: 'rule-save' }, editing ? 'Update rule' : 'Create rule');

  const compose = () => {
    const r = Object.assign({}, loaded);
    r.id = idIn.value.trim();
    const name = nameIn.value.trim();
    if (name) r.name = name; else delete r.name;
    if (sqlIn.value.trim() || !r.graph) r.sql = sqlIn.value;
    const a = parseJsonField(actIn.value, 'Actions');
    if (a !== undefined) r.actions = a; else delete r.actions;
    const o = parseJsonField(optIn.value, 'Options');
    if (o !== undefined) r.options = o; else delete r.options;
    return r;
  };

  let seq = 0;
  const showMsg = (kind, text) => { msg.className = 'validate msg ' + kind; msg.dataset.state = kind; msg.textContent = text; };
  const validate = async () => {
    const my = ++seq;
    let rule;
    try { rule = compose(); } catch (e) { showMsg('error', e.message); return; }
    if (!rule.id) rule.id = 'console_validate';
    try {
      const r = await api('POST', '/rules/validate', rule);
      if (my !== seq) return;
      const srcs = r && r.sources ? ' (sources: ' + r.sources.join(', ') + ')' : '';
      showMsg('ok', 'Valid' + srcs);
    } catch (e) {
      if (my !== seq) return;
      showMsg('error', e.status === 422 ? 'Invalid: ' + e.message : 'Cannot validate: ' + e.message);
    }
  };
  let timer;
  const later = () => { clearTimeout(timer); msg.dataset.state = 'pending'; timer = setTimeout(validate, 400); };
  nav.cleanups.push(() => clearTimeout(timer));
  for (const el of [idIn, nameIn, sqlIn, actIn, optIn]) el.addEventListener('input', later);

  const submit = async (ev) => {
    ev.preventDefault();
    let rule;
    try { rule = compose(); } catch (e) { flashError(e); return; }
    if (!rule.id) { flash('The rule needs an id.', 'error'); return; }
    save.disabled = true;
    const r = await act(() => editing ? api('PUT', '/rules/' + enc(rule.id), rule) : api('POST', '/rules', rule));
    save.disabled = false;
    if (r.ok) { nav.carried = [typeof r.value === 'string' ? r.value : 'saved', 'ok']; location.hash = '#/rules/' + enc(rule.id); }
  };

  append(v, [
    h('h1', {}, editing ? ['Edit rule ', h('code', {}, id)] : 'New rule'),
    h('form', { id: 'rule-form', class: 'panel', onsubmit: submit, autocomplete: 'off' },
      h('div', { class: 'grid2' },
        h('div', {}, h('label', { class: 'field', for: 'rule-id' }, 'Id'), idIn),
        h('div', {}, h('label', { class: 'field', for: 'rule-name' }, 'Name'), nameIn)),
      h('label', { class: 'field', for: 'rule-sql' }, 'SQL'), sqlIn,
      h('div', { class: 'grid2' },
        h('div', {}, h('label', { class: 'field', for: 'rule-actions' }, 'Actions (JSON array)'), actIn),
        h('div', {}, h('label', { class: 'field', for: 'rule-options' }, 'Options (JSON object)'), optIn)),
      msg,
      h('div', { class: 'row' }, save, h('button', { type: 'button', id: 'rule-validate', onclick: validate }, 'Validate'),
        h('a', { href: editing ? '#/rules/' + enc(id) : '#/rules' }, 'Cancel'))),
  ]);

  if (editing) {
    api('GET', '/rules/' + enc(id), undefined, { raw: true }).then((text) => {
      loaded = JSON.parse(text);
      nameIn.value = loaded.name || '';
      sqlIn.value = loaded.sql || '';
      actIn.value = JSON.stringify(loaded.actions || [], null, 2);
      optIn.value = loaded.options ? JSON.stringify(loaded.options, null, 2) : '{}';
      if (loaded.graph) showMsg('info', 'This is a graph rule: its graph is kept as it is; the SQL field stays empty.');
    }).catch(flashError);
  }
}

export { rulesPage, ruleDetail, ruleEditor };
