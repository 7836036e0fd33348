// Oort web console: streams and tables.
import {
  TOKEN_KEY, $, h, append, clear, enc, token, ApiError, headers, errorFrom, api, flash, flashError, act, statusClass, badge, fmtTime, parseJsonField, poll, download, nav, view,
} from './lib.js';

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

export { streamsPage };
