// Oort web console: vanilla JS, no framework, no build step. Served at
// /console/ by the binary; it talks to the REST API of the same server.
'use strict';

(function () {
  // ---------- small helpers ----------

  const TOKEN_KEY = 'oort.token';
  const $ = (sel, root) => (root || document).querySelector(sel);

  /** Builds an element: h('div', {class: 'x', onclick: f}, child, 'text', [more]). */
  function h(tag, attrs, ...kids) {
    const svg = ['svg', 'g', 'rect', 'text', 'path', 'defs', 'marker', 'title'].includes(tag);
    const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'value' && !svg) el.value = v;
      else if (k === 'checked' && !svg) el.checked = !!v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, kids);
    return el;
  }
  function append(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === undefined || k === null || k === false) continue;
      el.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return el;
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }
  const enc = encodeURIComponent;

  function token() { return localStorage.getItem(TOKEN_KEY) || ''; }

  /** An API error: the HTTP status and eKuiper's `{"error":code,"message":...}` (or the text). */
  class ApiError extends Error {
    constructor(status, message, code) { super(message); this.status = status; this.code = code; }
  }

  function headers(json) {
    const hd = {};
    if (json) hd['Content-Type'] = 'application/json';
    const t = token();
    if (t) hd.Authorization = 'Bearer ' + t;
    return hd;
  }

  function errorFrom(status, text) {
    let msg = text.trim();
    let code;
    try {
      const j = JSON.parse(text);
      if (j && typeof j === 'object' && 'message' in j) { msg = String(j.message); code = j.error; }
    } catch (_) { /* plain text */ }
    if (!msg) msg = 'HTTP ' + status;
    if (status === 401) msg = '401 Unauthorized: ' + msg + ' (set the API token in the sidebar)';
    else if (status === 403) msg = '403 Forbidden: ' + msg;
    return new ApiError(status, msg, code);
  }

  /** Calls the API; resolves to parsed JSON or text, rejects with ApiError. */
  async function api(method, path, body, opts) {
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers: headers(body !== undefined),
        body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, method + ' ' + path + ': the server cannot be reached (' + e.message + ')');
    }
    const text = await resp.text();
    if (!resp.ok) throw errorFrom(resp.status, text);
    if (opts && opts.raw) return text;
    const ct = resp.headers.get('Content-Type') || '';
    if (ct.startsWith('application/json') && text) {
      try { return JSON.parse(text); } catch (_) { return text; }
    }
    return text;
  }

  /** A message at the top of the page; errors stay until dismissed or replaced. */
  function flash(text, kind) {
    const box = $('#flash');
    clear(box);
    if (!text) return;
    const close = h('button', { type: 'button', title: 'dismiss', onclick: () => clear(box) }, '×');
    box.appendChild(h('div', { class: 'msg ' + (kind || 'info'), 'data-kind': kind || 'info' }, h('span', {}, text), close));
  }
  const flashError = (e) => flash(e instanceof Error ? e.message : String(e), 'error');

  /** Runs an action, reports its success text or its error. */
  async function act(fn, okText) {
    try {
      const r = await fn();
      const t = okText || (typeof r === 'string' && r.trim()) || 'done';
      flash(t, 'ok');
      return { ok: true, value: r };
    } catch (e) {
      flashError(e);
      return { ok: false };
    }
  }

  function statusClass(s) {
    s = String(s || '');
    if (s === 'running') return 'running';
    if (s.startsWith('stopped:') || s.includes('error') || s.startsWith('error')) return 'error';
    if (s === 'installed' || s === 'ok') return 'ok';
    return '';
  }
  const badge = (s) => h('span', { class: 'badge ' + statusClass(s) }, s);

  function fmtTime(v) {
    if (typeof v !== 'number' || v <= 0) return v === 0 ? '–' : v;
    return new Date(v).toLocaleString();
  }

  function parseJsonField(text, what) {
    if (!text.trim()) return undefined;
    try { return JSON.parse(text); } catch (e) { throw new Error(what + ' is not valid JSON: ' + e.message); }
  }

  /** Polls `fn` every `ms` until the view changes; the first call runs at once. */
  function poll(fn, ms) {
    let stopped = false;
    let timer;
    const tick = async () => {
      if (stopped) return;
      await fn();
      if (!stopped) timer = setTimeout(tick, ms);
    };
    tick();
    cleanups.push(() => { stopped = true; clearTimeout(timer); });
  }

  function download(name, text, type) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const a = h('a', { href: url, download: name });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // ---------- routing ----------

  let cleanups = [];
  let carried = null; // a message to show on the next page
  const view = () => $('#view');

  function route() {
    for (const c of cleanups) c();
    cleanups = [];
    flash(carried ? carried[0] : '', carried ? carried[1] : undefined);
    carried = null;
    const hash = location.hash.replace(/^#\/?/, '');
    const parts = hash.split('/').map(decodeURIComponent);
    let page = 'rules';
    const v = clear(view());
    if (parts[0] === 'rules' && parts[1] && parts[2] === 'edit') { page = 'editor'; ruleEditor(v, parts[1]); }
    else if (parts[0] === 'rules' && parts[1]) { page = 'rules'; ruleDetail(v, parts[1]); }
    else if (parts[0] === 'rule-new') { page = 'editor'; ruleEditor(v, null); }
    else if (parts[0] === 'streams') { page = 'streams'; streamsPage(v); }
    else if (parts[0] === 'plugins') { page = 'plugins'; pluginsPage(v); }
    else if (parts[0] === 'data') { page = 'data'; dataPage(v); }
    else rulesPage(v);
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === page);
  }

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
    cleanups.push(() => clearTimeout(timer));
    for (const el of [idIn, nameIn, sqlIn, actIn, optIn]) el.addEventListener('input', later);

    const submit = async (ev) => {
      ev.preventDefault();
      let rule;
      try { rule = compose(); } catch (e) { flashError(e); return; }
      if (!rule.id) { flash('The rule needs an id.', 'error'); return; }
      save.disabled = true;
      const r = await act(() => editing ? api('PUT', '/rules/' + enc(rule.id), rule) : api('POST', '/rules', rule));
      save.disabled = false;
      if (r.ok) { carried = [typeof r.value === 'string' ? r.value : 'saved', 'ok']; location.hash = '#/rules/' + enc(rule.id); }
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

  // ---------- streams and tables ----------

  function streamsPage(v) {
    const lists = h('div', {});
    const shown = h('div', {});
    const kindSel = h('select', { id: 'stream-kind' }, h('option', { value: 'streams' }, 'Stream'), h('option', { value: 'tables' }, 'Table'));
    const sqlIn = h('textarea', { id: 'stream-sql', class: 'code', rows: 4, spellcheck: 'false',
      placeholder: 'CREATE STREAM demo (temperature FLOAT) WITH (DATASOURCE="demo", TYPE="memory", FORMAT="JSON")' });
    const title = h('h2', { id: 'stream-form-title' }, 'Create');
    const submitBtn = h('button', { type: 'submit', class: 'primary', id: 'stream-submit' }, 'Create');
    let editing = null; // {kind, name}
    const formErr = h('div', { id: 'stream-error' });

    const setCreate = () => {
      editing = null; title.textContent = 'Create'; submitBtn.textContent = 'Create'; kindSel.disabled = false; sqlIn.value = '';
    };
    const submit = async (ev) => {
      ev.preventDefault();
      clear(formErr);
      const kind = editing ? editing.kind : kindSel.value;
      try {
        const r = editing
          ? await api('PUT', '/' + kind + '/' + enc(editing.name), { sql: sqlIn.value })
          : await api('POST', '/' + kind, { sql: sqlIn.value });
        flash(typeof r === 'string' ? r : JSON.stringify(r), 'ok');
        setCreate();
        refresh();
      } catch (e) {
        formErr.appendChild(h('div', { class: 'msg error' }, e.message));
      }
    };
    // The describe document's `Statement` is null (as eKuiper's for most
    // streams): the stored statement is read from the export document.
    const statement = async (kind, name) => {
      const doc = await api('GET', '/data/export', undefined, { raw: true });
      const items = JSON.parse(doc)[kind] || {};
      return items[name] || '';
    };
    const show = async (kind, name) => {
      try {
        const d = await api('GET', '/' + kind + '/' + enc(name));
        if (!d.Statement) d.Statement = await statement(kind, name);
        clear(shown).appendChild(h('div', { class: 'panel', id: 'stream-show' },
          h('div', { class: 'row' }, h('h2', {}, kind === 'streams' ? 'Stream ' : 'Table ', h('code', {}, name)), h('span', { class: 'spacer' }),
            h('button', { type: 'button', onclick: () => clear(shown) }, 'Close')),
          d.Statement ? h('pre', { class: 'statement' }, d.Statement) : null,
          h('pre', {}, JSON.stringify(d, null, 2))));
      } catch (e) { flashError(e); }
    };
    const edit = async (kind, name) => {
      try {
        const d = await api('GET', '/' + kind + '/' + enc(name));
        editing = { kind, name };
        kindSel.value = kind; kindSel.disabled = true;
        title.textContent = 'Edit ' + name; submitBtn.textContent = 'Replace';
        sqlIn.value = d.Statement || await statement(kind, name);
        sqlIn.focus();
      } catch (e) { flashError(e); }
    };
    const drop = (kind, name) => {
      if (!confirm('Drop ' + name + '?')) return;
      act(() => api('DELETE', '/' + kind + '/' + enc(name))).then(refresh);
    };
    const table = (kind, items) => h('div', { class: 'table-wrap' }, h('table', { id: kind + '-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Type'), h('th', {}, 'Format'), h('th', {}, 'Actions'))),
      h('tbody', {}, items.length ? items.map((s) => h('tr', { 'data-name': s.name },
        h('td', {}, h('code', {}, s.name)), h('td', {}, s.type || ''), h('td', {}, s.format || ''),
        h('td', { class: 'actions' },
          h('button', { type: 'button', 'data-act': 'show', onclick: () => show(kind, s.name) }, 'Show'), ' ',
          h('button', { type: 'button', 'data-act': 'edit', onclick: () => edit(kind, s.name) }, 'Edit'), ' ',
          h('button', { type: 'button', class: 'danger', 'data-act': 'drop', onclick: () => drop(kind, s.name) }, 'Drop'))))
        : h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'none')))));
    const refresh = async () => {
      try {
        const [streams, tables] = await Promise.all([api('GET', '/streamdetails'), api('GET', '/tabledetails')]);
        clear(lists);
        append(lists, [h('h2', {}, 'Streams'), table('streams', streams), h('h2', {}, 'Tables'), table('tables', tables)]);
      } catch (e) {
        clear(lists).appendChild(h('div', { class: 'msg error' }, 'Cannot list streams and tables: ' + e.message));
      }
    };
    append(v, [h('h1', {}, 'Streams & tables'),
      h('form', { class: 'panel', id: 'stream-form', onsubmit: submit },
        title,
        h('div', { class: 'row' }, h('label', { for: 'stream-kind' }, 'Kind'), kindSel),
        h('label', { class: 'field', for: 'stream-sql' }, 'SQL'), sqlIn, formErr,
        h('div', { class: 'row' }, submitBtn, h('button', { type: 'button', onclick: () => { clear(formErr); setCreate(); } }, 'Reset'))),
      shown, lists]);
    refresh();
  }

  // ---------- plugins ----------

  function pluginsPage(v) {
    const lists = h('div', {});
    const force = h('input', { type: 'checkbox', id: 'plugin-force' });

    const fmtGrants = (g) => {
      if (!g || typeof g !== 'object') return '–';
      const parts = [];
      for (const [k, val] of Object.entries(g)) {
        const arr = Array.isArray(val) ? val : (val ? [val] : []);
        if (arr.length) parts.push(k + ': ' + arr.join(', '));
      }
      return parts.length ? parts.join('; ') : 'none';
    };
    const del = (kind, name) => {
      if (!confirm('Delete ' + kind.replace(/s$/, '') + ' plugin ' + name + '?')) return;
      act(() => api('DELETE', '/plugins/' + kind + '/' + enc(name) + (force.checked ? '?force=1' : ''))).then(refresh);
    };
    const refresh = async () => {
      const sections = [];
      for (const kind of ['sources', 'sinks']) {
        try {
          const names = await api('GET', '/plugins/' + kind);
          const infos = await Promise.all(names.map((n) => api('GET', '/plugins/' + kind + '/' + enc(n)).catch((e) => ({ name: n, state: 'error: ' + e.message }))));
          sections.push(h('h2', {}, kind === 'sources' ? 'Source plugins' : 'Sink plugins'),
            h('div', { class: 'table-wrap' }, h('table', { id: 'plugins-' + kind },
              h('thead', {}, h('tr', {}, ['Name', 'Version', 'State', 'Loaded', 'Grants', 'Requested', 'Rules', 'World', ''].map((c) => h('th', {}, c)))),
              h('tbody', {}, infos.length ? infos.map((p) => h('tr', { 'data-name': p.name },
                h('td', {}, h('code', {}, p.name), p.builtin ? [' ', h('span', { class: 'badge' }, 'built-in')] : null),
                h('td', {}, p.version || ''),
                h('td', {}, badge(p.state || '')),
                h('td', {}, p.loaded ? (p.compiled || 'yes') : 'no'),
                h('td', { class: 'grants' }, fmtGrants(p.permissions_granted)),
                h('td', {}, fmtGrants(p.permissions_requested)),
                h('td', {}, (p.rules || []).join(', ')),
                h('td', {}, h('code', {}, p.world || '')),
                h('td', { class: 'actions' }, h('button', { type: 'button', class: 'danger', 'data-act': 'delete', onclick: () => del(kind, p.name) }, 'Delete'))))
                : h('tr', {}, h('td', { colspan: 9, class: 'muted' }, 'none'))))));
        } catch (e) {
          sections.push(h('div', { class: 'msg error' }, 'Cannot list ' + kind + ' plugins: ' + e.message));
        }
      }
      clear(lists);
      append(lists, sections);
    };

    // Install from a URI the server fetches (file://, http(s)://).
    const uKind = h('select', { id: 'install-kind' }, h('option', { value: 'sources' }, 'source'), h('option', { value: 'sinks' }, 'sink'));
    const uName = h('input', { id: 'install-name', placeholder: 'name' });
    const uFile = h('input', { id: 'install-uri', placeholder: 'file:///path/plugin.zip or https://…', size: 40 });
    const uSha = h('input', { id: 'install-sha256', placeholder: 'sha256 (optional)', size: 24 });
    const uGrants = h('textarea', { id: 'install-grants', class: 'code', rows: 2, placeholder: '{"outbound": ["tcp://10.0.0.5:4222"], "dirs": [], "env": []}  (optional)' });
    const install = async (ev) => {
      ev.preventDefault();
      const body = { name: uName.value.trim(), file: uFile.value.trim() };
      if (uSha.value.trim()) body.sha256 = uSha.value.trim();
      try {
        const g = parseJsonField(uGrants.value, 'Grants');
        if (g !== undefined) body.grants = g;
      } catch (e) { flashError(e); return; }
      const r = await act(() => api('POST', '/plugins/' + uKind.value, body));
      if (r.ok) refresh();
    };

    // Upload a package from this machine: PUT /plugins/{kind}/{name}/package.
    const pKind = h('select', { id: 'upload-kind' }, h('option', { value: 'sources' }, 'source'), h('option', { value: 'sinks' }, 'sink'));
    const pName = h('input', { id: 'upload-name', placeholder: 'name (default: file name)' });
    const pFile = h('input', { id: 'upload-file', type: 'file', accept: '.zip,.wasm' });
    const bar = h('progress', { id: 'upload-progress', max: 100, value: 0, hidden: true });
    const pct = h('span', { id: 'upload-percent', class: 'muted' });
    const upload = (ev) => {
      ev.preventDefault();
      const f = pFile.files && pFile.files[0];
      if (!f) { flash('Choose a package file (.zip or .wasm).', 'error'); return; }
      const name = pName.value.trim() || f.name.replace(/\.(zip|wasm)$/i, '');
      const xhr = new XMLHttpRequest();
      xhr.open('PUT', '/plugins/' + pKind.value + '/' + enc(name) + '/package');
      // Raw bytes: a type a cross-site page cannot send without a CORS
      // preflight, so the server accepts it from a browser.
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      if (token()) xhr.setRequestHeader('Authorization', 'Bearer ' + token());
      bar.hidden = false; bar.value = 0; pct.textContent = '0%';
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) {
          const p = Math.round((e.loaded / e.total) * 100);
          bar.value = p; pct.textContent = p + '% (' + e.loaded + ' / ' + e.total + ' bytes)';
        }
      };
      xhr.upload.onload = () => { bar.value = 100; pct.textContent = '100% sent, installing…'; };
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          pct.textContent = '100% ' + xhr.responseText;
          pct.dataset.done = 'ok';
          flash(xhr.responseText || 'uploaded', 'ok');
          refresh();
        } else {
          pct.textContent = 'failed';
          pct.dataset.done = 'error';
          flashError(errorFrom(xhr.status, xhr.responseText || ''));
        }
      };
      xhr.onerror = () => { pct.textContent = 'failed'; pct.dataset.done = 'error'; flash('Upload failed: the server cannot be reached.', 'error'); };
      delete pct.dataset.done;
      xhr.send(f);
    };

    append(v, [h('div', { class: 'row' }, h('h1', {}, 'Plugins'), h('span', { class: 'spacer' }),
      h('label', { class: 'row' }, force, 'force delete (stops the rules using it)'),
      h('button', { type: 'button', onclick: refresh }, 'Refresh')),
    h('p', { class: 'muted' }, 'WebAssembly source and sink plugins. Grants are what the operator gave each plugin; requested is what its manifest asks for.'),
    lists,
    h('div', { class: 'grid2' },
      h('form', { class: 'panel', id: 'install-form', onsubmit: install },
        h('h2', {}, 'Install from a URI'),
        h('p', { class: 'muted' }, 'The server fetches the package: file:// on the server\'s machine or http(s)://, within its outbound policy.'),
        h('div', { class: 'row' }, uKind, uName), h('label', { class: 'field' }, 'File URI'), uFile,
        h('label', { class: 'field' }, 'sha256'), uSha, h('label', { class: 'field' }, 'Grants (JSON)'), uGrants,
        h('p', {}, h('button', { type: 'submit', class: 'primary', id: 'install-submit' }, 'Install'))),
      h('form', { class: 'panel', id: 'upload-form', onsubmit: upload },
        h('h2', {}, 'Upload a package'),
        h('p', { class: 'muted' }, 'A zip package or a .wasm component from this machine; an existing plugin of that name is upgraded (its grants are kept).'),
        h('div', { class: 'row' }, pKind, pName), h('p', {}, pFile),
        h('p', { class: 'row' }, h('button', { type: 'submit', class: 'primary', id: 'upload-submit' }, 'Upload'), bar, pct))),
    ]);
    refresh();
  }

  // ---------- import / export ----------

  function dataPage(v) {
    const out = h('textarea', { id: 'export-doc', class: 'code', rows: 10, readonly: true, placeholder: 'Export to see the document here.' });
    const doc = h('textarea', { id: 'import-doc', class: 'code', rows: 10, spellcheck: 'false', placeholder: '{"streams": {...}, "rules": {...}}' });
    const file = h('input', { type: 'file', id: 'import-file', accept: '.json,application/json' });
    const partial = h('input', { type: 'checkbox', id: 'import-partial', checked: true });
    const statusBox = h('div', { id: 'import-status' });
    const result = h('div', { id: 'import-result' });

    const doExport = async () => {
      try {
        const text = await api('GET', '/data/export', undefined, { raw: true });
        let pretty = text;
        try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* as is */ }
        out.value = pretty;
        return pretty;
      } catch (e) { flashError(e); return null; }
    };
    const exportDownload = async () => {
      const t = await doExport();
      if (t !== null) download('oort_export.json', t, 'application/json');
    };
    file.addEventListener('change', async () => {
      const f = file.files && file.files[0];
      if (!f) return;
      try { doc.value = await f.text(); } catch (e) { flashError(e); }
    });
    const showStatus = async () => {
      try {
        const st = await api('GET', '/data/import/status');
        clear(statusBox);
        const rows = [];
        for (const [section, items] of Object.entries(st || {})) {
          if (items && typeof items === 'object' && !Array.isArray(items)) {
            const entries = Object.entries(items);
            if (!entries.length) continue;
            for (const [k, val] of entries) rows.push(h('tr', {}, h('td', {}, section), h('td', {}, h('code', {}, k)), h('td', {}, typeof val === 'string' ? val : JSON.stringify(val))));
          } else {
            rows.push(h('tr', {}, h('td', {}, section), h('td', {}), h('td', {}, typeof items === 'string' ? items : JSON.stringify(items))));
          }
        }
        append(statusBox, [h('h2', {}, 'Last import'), rows.length
          ? h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Section'), h('th', {}, 'Item'), h('th', {}, 'Error'))), h('tbody', {}, rows)))
          : h('div', { class: 'msg ok', 'data-state': 'clean' }, 'Every item of the last import was applied.')]);
      } catch (e) {
        clear(statusBox).appendChild(h('div', { class: 'msg error' }, 'Cannot read the import status: ' + e.message));
      }
    };
    const doImport = async (ev) => {
      ev.preventDefault();
      clear(result);
      const content = doc.value.trim();
      if (!content) { result.appendChild(h('div', { class: 'msg error' }, 'Paste a document or choose a file first.')); return; }
      if (!partial.checked && !confirm('A full import replaces every stream, table, rule and plugin. Continue?')) return;
      try {
        const r = await api('POST', '/data/import' + (partial.checked ? '?partial=1' : ''), { content });
        result.appendChild(h('div', { class: 'msg ok', 'data-state': 'ok' }, 'Imported. ' + (r && r.ErrorMsg ? r.ErrorMsg : '')));
      } catch (e) {
        let text = e.message;
        try { text = JSON.stringify(JSON.parse(e.message), null, 2); } catch (_) { /* not a report */ }
        result.appendChild(h('div', { class: 'msg error', 'data-state': 'error' }, 'Import failed: ' + text));
      }
      showStatus();
    };

    append(v, [h('h1', {}, 'Import / export'),
      h('div', { class: 'grid2' },
        h('div', { class: 'panel' }, h('h2', {}, 'Export'),
          h('p', { class: 'muted' }, 'Every stream, table, rule, plugin and conf key, as eKuiper\'s data document (GET /data/export).'),
          h('div', { class: 'row' }, h('button', { type: 'button', id: 'export-show', onclick: doExport }, 'Show'),
            h('button', { type: 'button', class: 'primary', id: 'export-download', onclick: exportDownload }, 'Download')),
          h('p', {}), out),
        h('form', { class: 'panel', id: 'import-form', onsubmit: doImport }, h('h2', {}, 'Import'),
          h('p', { class: 'muted' }, 'Paste a document or load it from a file.'),
          h('p', {}, file), doc,
          h('p', { class: 'row' }, h('label', { class: 'row' }, partial, 'partial: keep what the document does not name'),
            h('span', { class: 'spacer' }), h('button', { type: 'submit', class: 'primary', id: 'import-submit' }, 'Import')),
          result)),
      statusBox]);
    showStatus();
  }

  // ---------- start ----------

  function initToken() {
    const input = $('#token');
    const state = $('#token-state');
    const show = () => { state.textContent = token() ? 'token set' : 'no token sent'; };
    input.value = token();
    show();
    $('#token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (t) localStorage.setItem(TOKEN_KEY, t); else localStorage.removeItem(TOKEN_KEY);
      show();
      route();
    });
  }

  async function serverInfo() {
    try {
      const i = await api('GET', '/');
      $('#server-info').textContent = 'Oort ' + i.version + ' · ' + i.os + '/' + i.arch + (i.instanceId ? ' · ' + i.instanceId : '');
    } catch (e) {
      $('#server-info').textContent = 'server: ' + e.message;
    }
  }

  initToken();
  serverInfo();
  window.addEventListener('hashchange', route);
  route();
})();
