// Oort web console, shared helpers: elements, the API client, messages,
// polling. Vanilla JS modules, no framework, no build step; served at
// /console/ by the binary, talking to the REST API of the same server.

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
  nav.cleanups.push(() => { stopped = true; clearTimeout(timer); });
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** Page state: what to stop when the page changes, a message for the next page. */
const nav = { cleanups: [], carried: null };
const view = () => $('#view');

export { TOKEN_KEY, $, h, append, clear, enc, token, ApiError, headers, errorFrom, api, flash, flashError, act, statusClass, badge, fmtTime, parseJsonField, poll, download, nav, view };
