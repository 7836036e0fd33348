// Oort web console: WebAssembly plugins (list, install by URI, upload).
import {
  TOKEN_KEY, $, h, append, clear, enc, token, ApiError, headers, errorFrom, api, flash, flashError, act, statusClass, badge, fmtTime, parseJsonField, poll, download, nav, view,
} from './lib.js';

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

export { pluginsPage };
