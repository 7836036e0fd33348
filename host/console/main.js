// Oort web console: the entry point (routing by the URL's hash, the API
// token field, the server's version).
import {
  TOKEN_KEY, $, h, append, clear, enc, token, ApiError, headers, errorFrom, api, flash, flashError, act, statusClass, badge, fmtTime, parseJsonField, poll, download, nav, view,
} from './lib.js';
import { rulesPage, ruleDetail, ruleEditor } from './rules.js';
import { streamsPage } from './streams.js';
import { pluginsPage } from './plugins.js';
import { dataPage } from './data.js';

function route() {
  for (const c of nav.cleanups) c();
  nav.cleanups = [];
  flash(nav.carried ? nav.carried[0] : '', nav.carried ? nav.carried[1] : undefined);
  nav.carried = null;
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
