// Oort web console: import and export.
import {
  TOKEN_KEY, $, h, append, clear, enc, token, ApiError, headers, errorFrom, api, flash, flashError, act, statusClass, badge, fmtTime, parseJsonField, poll, download, nav, view,
} from './lib.js';

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

export { dataPage };
