// nikara dashboard: a plain client of the public REST API (see /docs). No build step, no framework.
// The only secret it holds is the user's own bearer JWT, in sessionStorage (this tab only).

const TOKEN_KEY = 'nikara.token';
const PENDING_KEY = 'nikara.connecting';
const VIEWS = ['accounts', 'compose', 'posts', 'engagement'];
const VIEW_TITLES = { accounts: 'Accounts', compose: 'Compose', posts: 'Posts', engagement: 'Engagement' };
const POLL_MS = 3000;

const PLATFORMS = {
  facebook: { name: 'Facebook', mark: 'f' },
  instagram: { name: 'Instagram', mark: 'IG' },
  linkedin: { name: 'LinkedIn', mark: 'in' },
  x: { name: 'X', mark: 'X' },
  tiktok: { name: 'TikTok', mark: 'TT' },
  reddit: { name: 'Reddit', mark: 'r/' },
  youtube: { name: 'YouTube', mark: 'YT' },
};

const STATUS = {
  active: { label: 'Active', icon: 'check', tone: 'ok' },
  expiring: { label: 'Expiring', icon: 'clock', tone: 'warn' },
  needs_reauth: { label: 'Needs re-auth', icon: 'alert', tone: 'alert' },
  revoked: { label: 'Revoked', icon: 'ban', tone: 'bad' },
};

const POST_STATUS = {
  scheduled: { label: 'Scheduled', icon: 'calendar', tone: 'info' },
  publishing: { label: 'Publishing', icon: 'send', tone: 'info' },
  published: { label: 'Published', icon: 'check', tone: 'ok' },
  failed: { label: 'Failed', icon: 'xcircle', tone: 'bad' },
  cancelled: { label: 'Cancelled', icon: 'ban', tone: 'muted' },
  outcome_unknown: { label: 'Outcome unknown', icon: 'question', tone: 'warn' },
};

// What the OAuth callback's `?error=` codes mean, for people.
const CONNECT_ERRORS = {
  access_denied: 'The connection was cancelled on the platform’s consent screen, so nothing was connected.',
  token_rejected: 'The platform rejected the sign-in. Please try connecting again.',
  platform_unavailable: 'The platform did not answer. Please try again in a few minutes.',
  rate_limited: 'The platform is rate-limiting requests right now. Please try again in a few minutes.',
  platform_error: 'The platform refused the connection.',
  platform_invalid_response: 'The platform answered something nikara could not understand. Please try again later.',
  no_accounts:
    'No account could be connected. For Facebook, grant access to at least one Page; for Instagram, link an Instagram business or creator account to a Facebook Page.',
  platform_not_configured:
    'This platform is no longer configured on this hub. Ask your administrator to set its client id and secret.',
  missing_code: 'The platform came back without an authorization code. Please try again.',
  invalid_scope: 'The platform did not grant the permissions nikara needs. Please allow all requested permissions.',
  internal:
    'nikara could not store the connection. Please try again; if it keeps failing, the hub’s log has the details.',
  oauth_error: 'The platform reported an error during sign-in.',
};

// ---------------------------------------------------------------------------------------------
// Small DOM helpers. Text always goes in as text nodes: nothing from the API is parsed as HTML.

const $ = (id) => document.getElementById(id);

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const ICONS = {
  check: 'M20 6 9 17l-5-5',
  clock: 'M12 7v5l3 2M21 12a9 9 0 1 1-18 0 9 9 0 0 1 18 0z',
  alert: 'M12 9v4m0 4h.01M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z',
  ban: 'M4.9 4.9l14.2 14.2M21 12a9 9 0 1 1-18 0 9 9 0 0 1 18 0z',
  xcircle: 'M15 9l-6 6m0-6 6 6M21 12a9 9 0 1 1-18 0 9 9 0 0 1 18 0z',
  question: 'M9.1 9a3 3 0 0 1 5.8 1c0 2-3 3-3 3m.1 4h.01M21 12a9 9 0 1 1-18 0 9 9 0 0 1 18 0z',
  info: 'M12 16v-4m0-4h.01M21 12a9 9 0 1 1-18 0 9 9 0 0 1 18 0z',
  calendar: 'M8 2v4m8-4v4M3 10h18M5 4h14a2 2 0 0 1 2 2v14a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z',
  send: 'M22 2 11 13M22 2l-7 20-4-9-9-4 20-7z',
  sync: 'M21 12a9 9 0 0 1-15.5 6.2L3 16m0 5v-5h5M3 12a9 9 0 0 1 15.5-6.2L21 8m0-5v5h-5',
  external: 'M15 3h6v6m0-6L10 14M18 13v6a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h6',
  plus: 'M12 5v14M5 12h14',
  close: 'M18 6 6 18M6 6l12 12',
  heart: 'M20.8 4.6a5.5 5.5 0 0 0-7.8 0L12 5.7l-1-1.1a5.5 5.5 0 0 0-7.8 7.8L12 21.2l8.8-8.8a5.5 5.5 0 0 0 0-7.8z',
  comment: 'M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z',
  share: 'M17 1l4 4-4 4M3 11V9a4 4 0 0 1 4-4h14M7 23l-4-4 4-4m14-2v2a4 4 0 0 1-4 4H3',
  eye: 'M1 12s4-8 11-8 11 8 11 8-4 8-11 8-11-8-11-8zm11 3a3 3 0 1 0 0-6 3 3 0 0 0 0 6z',
  link: 'M10 13a5 5 0 0 0 7.5.5l3-3a5 5 0 0 0-7-7l-1.8 1.7M14 11a5 5 0 0 0-7.5-.5l-3 3a5 5 0 0 0 7 7l1.7-1.7',
  user: 'M20 21v-2a4 4 0 0 0-4-4H8a4 4 0 0 0-4 4v2M12 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8z',
};

function icon(name, cls = '') {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', `icon ${cls}`.trim());
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', ICONS[name] || ICONS.info);
  svg.append(path);
  return svg;
}

function platformName(p) {
  return PLATFORMS[p]?.name || p;
}

function platformMark(p, size = '') {
  return h('span', {
    class: `pmark pmark-${p} ${size}`.trim(),
    'aria-hidden': 'true',
    text: PLATFORMS[p]?.mark || '?',
  });
}

function badge(meta, extraClass = '') {
  return h('span', { class: `badge tone-${meta.tone} ${extraClass}`.trim() }, icon(meta.icon), meta.label);
}

// ---------------------------------------------------------------------------------------------
// Time: relative text, exact time on hover and on keyboard focus.

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const exactFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'long' });
const shortFmt = new Intl.DateTimeFormat(undefined, {
  weekday: 'short',
  day: 'numeric',
  month: 'short',
  hour: '2-digit',
  minute: '2-digit',
});
const dayFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', timeZone: 'UTC' });
const numFmt = new Intl.NumberFormat();
const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';

const UNITS = [
  ['year', 31557600],
  ['month', 2629800],
  ['week', 604800],
  ['day', 86400],
  ['hour', 3600],
  ['minute', 60],
];

function relative(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = (t - now) / 1000;
  const abs = Math.abs(s);
  if (abs < 45) return s <= 0 ? 'just now' : 'in a few seconds';
  for (const [unit, size] of UNITS) {
    if (abs >= size || unit === 'minute') return rtf.format(Math.round(s / size), unit);
  }
  return '';
}

// A <time> with relative text (kept fresh by tick()) and the exact time as its tooltip.
function timeEl(iso, prefix = '') {
  const exact = exactFmt.format(new Date(iso));
  return h(
    'time',
    { datetime: iso, title: exact, 'data-tip': exact, tabindex: '0' },
    h('span', { class: 'rel', dataset: { rel: iso, prefix }, text: `${prefix}${relative(iso)}` }),
    h('span', { class: 'visually-hidden', text: ` (${exact})` }),
  );
}

function tick() {
  for (const el of document.querySelectorAll('span[data-rel]')) {
    const text = `${el.dataset.prefix || ''}${relative(el.dataset.rel)}`;
    if (el.textContent !== text) el.textContent = text;
  }
}

// ---------------------------------------------------------------------------------------------
// Notices (aria-live region). Success and info are polite; errors are alerts.

function notice(kind, message, { action, details, sticky = false } = {}) {
  const tones = { success: 'check', info: 'info', warning: 'alert', error: 'xcircle' };
  const box = h(
    'div',
    // The container is the polite live region; errors interrupt.
    { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : undefined },
    icon(tones[kind] || 'info', 'notice-icon'),
    h(
      'div',
      { class: 'notice-body' },
      h('p', { class: 'notice-text', text: message }),
      details ? h('p', { class: 'notice-details', text: details }) : null,
    ),
  );
  const actions = h('div', { class: 'notice-actions' });
  if (action)
    actions.append(
      h('button', { type: 'button', class: 'btn btn-small btn-secondary', text: action.label, onclick: action.run }),
    );
  actions.append(
    h(
      'button',
      { type: 'button', class: 'btn-icon', 'aria-label': 'Dismiss notice', onclick: () => box.remove() },
      icon('close'),
    ),
  );
  box.append(actions);
  $('notices').append(box);
  if (!sticky && kind !== 'error') setTimeout(() => box.remove(), 12000);
  return box;
}

// ---------------------------------------------------------------------------------------------
// API client.

class ApiError extends Error {
  constructor(status, code, message, fields = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

const state = {
  token: null,
  claims: null,
  view: null,
  platforms: [],
  accounts: [],
  queue: [],
  history: [],
  pendingQuery: null,
  renderKeys: {},
  chart: null,
};

async function api(method, path, { body, headers = {}, token = state.token } = {}) {
  const init = {
    method,
    headers: { Accept: 'application/json', Authorization: `Bearer ${token}`, ...headers },
    cache: 'no-store',
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'The hub could not be reached. Check your connection and try again.');
  }
  let data = null;
  if (res.status !== 204) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = data?.error || {};
    const e = new ApiError(
      res.status,
      err.code || `http_${res.status}`,
      err.message || res.statusText || 'Request failed',
      err.fields || [],
    );
    if (res.status === 401 && token === state.token && state.token) {
      signOut('Your session has ended (the token expired or was refused). Paste a new token to continue.');
    }
    throw e;
  }
  return data;
}

// Every page of a list (`next_cursor`), up to `maxPages`.
async function listAll(path, maxPages = 20) {
  const items = [];
  let cursor = null;
  for (let i = 0; i < maxPages; i++) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api('GET', cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
    items.push(...(page?.items || []));
    cursor = page?.next_cursor;
    if (!cursor) break;
  }
  return items;
}

function reportError(e, what) {
  if (e?.status === 401) return;
  notice('error', `${what}: ${e?.message || e}`);
}

// ---------------------------------------------------------------------------------------------
// Session.

function decodeClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(
      Array.from(
        atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')),
        (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
      ).join(''),
    );
    return JSON.parse(json);
  } catch {
    return null;
  }
}

function takeTokenFromFragment() {
  const m = location.hash.match(/^#token=([^&]+)/);
  if (!m) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
  // Out of the address bar and the history at once.
  history.replaceState(null, '', location.pathname + location.search);
}

function takeQuery() {
  const q = new URLSearchParams(location.search);
  const picked = {};
  for (const k of ['connected', 'error', 'reconnect']) if (q.get(k)) picked[k] = q.get(k);
  if (Object.keys(picked).length) {
    state.pendingQuery = picked;
    history.replaceState(null, '', location.pathname + location.hash);
  }
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  state.token = null;
  state.claims = null;
  state.accounts = [];
  state.queue = [];
  state.history = [];
  state.renderKeys = {};
  $('nav').hidden = true;
  $('session').hidden = true;
  $('notices').replaceChildren();
  showSignIn();
  if (message) notice('warning', message, { sticky: true });
}

function showSignIn() {
  for (const v of document.querySelectorAll('.view')) v.hidden = true;
  $('view-signin').hidden = false;
  document.title = 'Sign in · nikara';
  $('signin-token').value = '';
  $('signin-token').focus();
}

async function signIn(token, fromForm = false) {
  const me = await api('GET', '/api/me', { token });
  state.token = token;
  state.claims = decodeClaims(token) || {};
  sessionStorage.setItem(TOKEN_KEY, token);
  $('session-who').textContent = me?.email || state.claims.email || state.claims.sub || me?.user_id || '';
  $('session-who').title = `Signed in as ${me?.user_id || state.claims.sub}`;
  $('session').hidden = false;
  $('nav').hidden = false;
  $('view-signin').hidden = true;
  await loadPlatforms();
  await loadAccounts();
  await handleQuery();
  route(false);
  if (state.highlight) highlightAccount(state.highlight, true);
  else if (fromForm) $(`${state.view}-title`).focus();
}

function setupSignIn() {
  $('signin-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('signin-token');
    const err = $('signin-error');
    const token = input.value.trim().replace(/^Bearer\s+/i, '');
    const fail = (msg) => {
      err.replaceChildren(icon('alert'), msg);
      err.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    };
    if (!/^[\w-]+\.[\w-]+\.[\w-]*$/.test(token))
      return fail('That does not look like a JWT: three parts separated by dots.');
    $('signin-submit').disabled = true;
    try {
      await signIn(token, true);
      err.hidden = true;
      input.removeAttribute('aria-invalid');
    } catch (e) {
      fail(e.status === 401 ? `The hub refused this token: ${e.message}` : e.message);
    } finally {
      $('signin-submit').disabled = false;
    }
  });
  $('sign-out').addEventListener('click', () => signOut());
}

// ---------------------------------------------------------------------------------------------
// Routing between the four views (hash links, so the keyboard and the back button work).

function route(userInitiated = true) {
  if (!state.token) return;
  const wanted = location.hash.slice(1);
  const view = VIEWS.includes(wanted) ? wanted : state.view || 'accounts';
  const changed = view !== state.view;
  state.view = view;
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== view;
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === view) {
      a.setAttribute('aria-current', 'page');
      a.scrollIntoView({ block: 'nearest', inline: 'nearest' });
    } else a.removeAttribute('aria-current');
  }
  document.title = `${VIEW_TITLES[view]} · nikara`;
  if (changed && userInitiated) $(`${view}-title`).focus({ preventScroll: false });
  refreshView(view);
}

async function refreshView(view = state.view) {
  try {
    if (view === 'accounts') await loadAccounts();
    else if (view === 'compose') {
      renderCompose();
      await loadAccounts();
      renderCompose();
    } else if (view === 'posts') await loadPosts();
    else if (view === 'engagement') await loadEngagement();
  } catch (e) {
    reportError(e, 'Could not load');
  }
}

// ---------------------------------------------------------------------------------------------
// Accounts.

async function loadPlatforms() {
  const list = await api('GET', '/api/platforms');
  state.platforms = list?.items || [];
  renderConnectButtons();
}

async function loadAccounts() {
  state.accounts = await listAll('/api/accounts?limit=200');
  renderAccounts();
}

function renderConnectButtons() {
  const box = $('connect-buttons');
  if (!state.platforms.length) {
    box.replaceChildren(
      h('p', {
        class: 'muted',
        text: 'No platform is configured on this hub yet. An administrator sets NIKARA_{PLATFORM}_CLIENT_ID and _CLIENT_SECRET; see the README.',
      }),
    );
    return;
  }
  box.replaceChildren(
    ...state.platforms.map((p) =>
      h(
        'button',
        {
          type: 'button',
          class: 'btn btn-connect',
          dataset: { platform: p.platform },
          onclick: (ev) => startConnect(p.platform, null, ev.currentTarget),
        },
        platformMark(p.platform),
        h('span', { text: `Connect ${p.name}` }),
      ),
    ),
  );
}

async function startConnect(platform, accountId, button) {
  if (button) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  }
  try {
    const r = await api('POST', `/api/oauth/${encodeURIComponent(platform)}/start`, { body: {} });
    sessionStorage.setItem(PENDING_KEY, JSON.stringify({ platform, accountId, at: Date.now() }));
    location.assign(r.authorize_url);
  } catch (e) {
    reportError(e, `Could not start connecting ${platformName(platform)}`);
    if (button) {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }
}

function initials(name) {
  const words = String(name || '?')
    .replace(/^@/, '')
    .split(/[\s._-]+/)
    .filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[1][0] : (words[0] || '?').slice(0, 2);
  return letters.toUpperCase();
}

function hue(s) {
  let x = 0;
  for (const c of String(s)) x = (x * 31 + c.codePointAt(0)) >>> 0;
  return x % 8;
}

function avatar(account, size = '') {
  const name = account.display_name || account.username || platformName(account.platform);
  const fallback = h('span', {
    class: `avatar avatar-initials hue-${hue(account.id)} ${size}`.trim(),
    'aria-hidden': 'true',
    text: initials(name),
  });
  const wrap = h('span', { class: `avatar-wrap ${size}`.trim() });
  if (account.avatar_url && /^(https:|data:image\/)/.test(account.avatar_url)) {
    const img = h('img', {
      class: `avatar ${size}`.trim(),
      src: account.avatar_url,
      alt: '',
      referrerpolicy: 'no-referrer',
      decoding: 'async',
    });
    img.addEventListener('error', () => img.replaceWith(fallback), { once: true });
    wrap.append(img);
  } else {
    wrap.append(fallback);
  }
  wrap.append(platformMark(account.platform, 'pmark-badge'));
  return wrap;
}

function accountLabel(a) {
  return a.display_name || (a.username ? `@${a.username}` : platformName(a.platform));
}

function statusDetail(a) {
  const p = platformName(a.platform);
  switch (a.status) {
    case 'expiring':
      return a.token_expires_at
        ? `The token expires ${relative(a.token_expires_at)} and cannot renew itself. Reconnect to keep publishing.`
        : 'The token expires soon and cannot renew itself. Reconnect to keep publishing.';
    case 'needs_reauth':
      return `${p} needs you to sign in again. Scheduled posts wait until you reconnect.`;
    case 'revoked':
      return `Access was revoked on ${p}. Scheduled posts wait until you reconnect.`;
    default:
      return null;
  }
}

const NEEDS_ATTENTION = ['expiring', 'needs_reauth', 'revoked'];

function renderAccounts() {
  const list = $('account-list');
  const key = JSON.stringify(state.accounts);
  if (state.renderKeys.accounts === key) return;
  state.renderKeys.accounts = key;
  const focus = rememberFocus(list);
  const order = { revoked: 0, needs_reauth: 1, expiring: 2, active: 3 };
  const accounts = [...state.accounts].sort(
    (a, b) => (order[a.status] ?? 4) - (order[b.status] ?? 4) || a.connected_at.localeCompare(b.connected_at),
  );
  const attention = accounts.filter((a) => NEEDS_ATTENTION.includes(a.status)).length;
  const summary = $('accounts-summary');
  summary.replaceChildren();
  if (accounts.length) {
    summary.append(`${accounts.length} ${accounts.length === 1 ? 'account' : 'accounts'} connected`);
    if (attention)
      summary.append(
        ' · ',
        h(
          'strong',
          { class: 'text-alert' },
          icon('alert'),
          `${attention} ${attention === 1 ? 'needs' : 'need'} your attention`,
        ),
      );
  }
  if (!accounts.length) {
    list.replaceChildren(
      h(
        'li',
        { class: 'empty card' },
        icon('user', 'empty-icon'),
        h('p', {
          text: 'No accounts yet. Connect one above: you will be sent to the platform to allow access, then brought back here.',
        }),
      ),
    );
    return;
  }
  list.replaceChildren(...accounts.map(accountCard));
  restoreFocus(list, focus);
  if (state.highlight) highlightAccount(state.highlight, false);
}

function accountCard(a) {
  const meta = STATUS[a.status] || { label: a.status, icon: 'info', tone: 'muted' };
  const nameId = `acc-name-${a.id}`;
  const detail = statusDetail(a);
  const synced = a.last_synced_at
    ? h('p', { class: 'synced' }, icon('sync'), timeEl(a.last_synced_at, 'Last synced '))
    : h('p', { class: 'synced' }, icon('sync'), h('span', { text: 'Never synced' }));
  const actions = h('div', { class: 'card-actions' });
  if (NEEDS_ATTENTION.includes(a.status)) {
    actions.append(
      h(
        'button',
        {
          type: 'button',
          class: 'btn btn-primary btn-small',
          dataset: { action: 'reconnect' },
          'aria-describedby': nameId,
          onclick: (ev) => startConnect(a.platform, a.id, ev.currentTarget),
        },
        icon('sync'),
        'Reconnect',
      ),
    );
  }
  actions.append(
    h(
      'button',
      {
        type: 'button',
        class: 'btn btn-ghost-danger btn-small',
        dataset: { action: 'disconnect' },
        'aria-describedby': nameId,
        onclick: () => confirmDisconnect(a),
      },
      'Disconnect',
    ),
  );
  return h(
    'li',
    {
      class: `account-card card status-${a.status}`,
      id: `account-${a.id}`,
      dataset: { key: a.id, status: a.status, platform: a.platform },
      tabindex: '-1',
      'aria-labelledby': nameId,
    },
    h(
      'div',
      { class: 'account-top' },
      avatar(a),
      h(
        'div',
        { class: 'account-who' },
        h('h3', { class: 'account-name', id: nameId, text: a.display_name || a.username || platformName(a.platform) }),
        h(
          'p',
          { class: 'account-handle' },
          a.username ? h('span', { text: `@${a.username}` }) : null,
          a.username ? ' · ' : null,
          h('span', { text: platformName(a.platform) }),
        ),
      ),
      badge(meta, 'account-status'),
    ),
    synced,
    detail
      ? h(
          'div',
          { class: `account-problem tone-${meta.tone}` },
          icon(meta.icon),
          h(
            'div',
            {},
            h('p', { text: detail }),
            a.last_error
              ? h('p', { class: 'platform-said', text: `${platformName(a.platform)} said: “${a.last_error}”` })
              : null,
          ),
        )
      : null,
    h(
      'dl',
      { class: 'account-facts' },
      h('div', {}, h('dt', { text: 'Connected' }), h('dd', {}, timeEl(a.connected_at))),
      h('div', {}, h('dt', { text: 'Token' }), h('dd', {}, tokenFact(a))),
    ),
    actions,
  );
}

function tokenFact(a) {
  if (a.status === 'active') return 'Renewed automatically';
  if (a.status === 'expiring' && a.token_expires_at) return timeEl(a.token_expires_at, 'Expires ');
  if (a.status === 'expiring') return 'Expires soon';
  return 'Needs you to reconnect';
}

function highlightAccount(id, announce = true) {
  const card = document.getElementById(`account-${id}`);
  if (!card) return false;
  for (const c of document.querySelectorAll('.account-card.highlight')) c.classList.remove('highlight');
  card.classList.add('highlight');
  if (announce) {
    card.scrollIntoView({ block: 'center' });
    card.focus({ preventScroll: true });
  }
  return true;
}

async function countScheduled(accountId) {
  const items = await listAll(
    `/api/posts?status=scheduled&account_id=${encodeURIComponent(accountId)}&limit=200`,
    1000,
  );
  return items.length;
}

function openDialog(dlg) {
  return new Promise((resolve) => {
    const onClick = (ev) => {
      const b = ev.target.closest('[data-close]');
      if (b) dlg.close(b.dataset.close);
    };
    dlg.addEventListener('click', onClick);
    dlg.addEventListener(
      'close',
      () => {
        dlg.removeEventListener('click', onClick);
        resolve(dlg.returnValue || 'cancel');
      },
      { once: true },
    );
    dlg.returnValue = '';
    dlg.showModal();
  });
}

async function confirmDisconnect(a) {
  const dlg = $('dlg-disconnect');
  const body = $('dlg-disconnect-body');
  const confirm = $('dlg-disconnect-confirm');
  $('dlg-disconnect-title').textContent = `Disconnect ${accountLabel(a)} (${platformName(a.platform)})?`;
  body.textContent = 'Counting scheduled posts…';
  confirm.disabled = true;
  const answer = openDialog(dlg);
  $('dlg-disconnect').querySelector('[data-close="cancel"]').focus();
  try {
    const n = await countScheduled(a.id);
    body.textContent =
      (n === 0
        ? 'No scheduled posts will be cancelled.'
        : `This cancels ${n} scheduled ${n === 1 ? 'post' : 'posts'} for this account.`) +
      ' Published posts stay in your history. You can connect the account again at any time.';
    confirm.disabled = false;
  } catch (e) {
    body.textContent = `Could not count the scheduled posts (${e.message}). Disconnecting cancels all of this account’s scheduled posts.`;
    confirm.disabled = false;
  }
  if ((await answer) !== 'confirm') return;
  try {
    await api('DELETE', `/api/accounts/${encodeURIComponent(a.id)}`);
    notice('success', `Disconnected ${accountLabel(a)} (${platformName(a.platform)}).`);
    await loadAccounts();
    $('accounts-title').focus();
  } catch (e) {
    reportError(e, 'Could not disconnect');
  }
}

// After the OAuth redirect (`?connected=`, `?error=`) and from the mail link (`?reconnect=`).
async function handleQuery() {
  const q = state.pendingQuery;
  state.pendingQuery = null;
  if (!q) return;
  let pending = null;
  try {
    pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || 'null');
  } catch {
    pending = null;
  }
  sessionStorage.removeItem(PENDING_KEY);
  if (q.connected) {
    const p = q.connected;
    const fresh = state.accounts
      .filter((a) => a.platform === p)
      .sort((a, b) => b.connected_at.localeCompare(a.connected_at));
    const newest = fresh[0];
    const who = newest
      ? `: ${fresh
          .filter((a) => a.connected_at === newest.connected_at)
          .map(accountLabel)
          .join(', ')}`
      : '';
    notice('success', `Connected ${platformName(p)}${who}.`);
    if (location.hash !== '#accounts') history.replaceState(null, '', `${location.pathname}#accounts`);
    if (newest) state.highlight = newest.id;
  }
  if (q.error) {
    const where = pending?.platform ? platformName(pending.platform) : 'the account';
    const text = CONNECT_ERRORS[q.error] || `The connection failed (${q.error}).`;
    let details;
    try {
      const page = await api('GET', '/api/activity?limit=10');
      const item = (page?.items || []).find((i) => i.type === 'AccountConnectionFailed');
      if (item) details = item.summary;
    } catch {
      details = undefined;
    }
    notice('error', `Could not connect ${where}. ${text}`, {
      details,
      action: pending?.platform
        ? { label: 'Try again', run: () => startConnect(pending.platform, pending.accountId) }
        : undefined,
    });
    history.replaceState(null, '', `${location.pathname}#accounts`);
  }
  if (q.reconnect) {
    history.replaceState(null, '', `${location.pathname}#accounts`);
    const a = state.accounts.find((x) => x.id === q.reconnect);
    if (!a) {
      notice('warning', 'That account is no longer connected. Connect it again from the list of platforms.');
      return;
    }
    state.highlight = a.id;
    if (NEEDS_ATTENTION.includes(a.status)) {
      notice(
        'warning',
        `${accountLabel(a)} on ${platformName(a.platform)} needs you to reconnect it. ${statusDetail(a) || ''}`.trim(),
        {
          action: { label: `Reconnect ${platformName(a.platform)}`, run: () => startConnect(a.platform, a.id) },
          sticky: true,
        },
      );
    } else {
      notice('info', `${accountLabel(a)} on ${platformName(a.platform)} is connected and healthy; nothing to do.`);
    }
  }
}

// Keep keyboard focus across re-renders of a list (items carry data-key, buttons data-action).
function rememberFocus(container) {
  const el = document.activeElement;
  if (!el || !container.contains(el)) return null;
  const item = el.closest('[data-key]');
  return item ? { key: item.dataset.key, action: el.dataset.action || null } : null;
}

function restoreFocus(container, f) {
  if (!f) return;
  const item = container.querySelector(`[data-key="${CSS.escape(f.key)}"]`);
  const target = (f.action && item?.querySelector(`[data-action="${CSS.escape(f.action)}"]`)) || item;
  if (target) target.focus({ preventScroll: true });
}

// ---------------------------------------------------------------------------------------------
// Compose: per-platform limits as you type, exactly as the hub counts them.

// X counts by weight (twitter-text v3): most Latin, Greek, Cyrillic and common punctuation weigh 1,
// other characters (CJK, emoji, …) weigh 2, and every URL weighs 23 whatever its length.
function xWeight(cp) {
  return cp <= 4351 || (cp >= 8192 && cp <= 8205) || (cp >= 8208 && cp <= 8223) || (cp >= 8242 && cp <= 8247) ? 1 : 2;
}
const isSpace = (ch) => /\s/u.test(ch) && ch !== '\uFEFF';
function xWeightedLength(text) {
  let total = 0;
  let word = [];
  const flush = () => {
    if (!word.length) return;
    let end = word.length;
    while (end > 0 && isSpace(word[end - 1])) end--;
    const trimmed = word.slice(0, end).join('');
    if (trimmed.startsWith('http://') || trimmed.startsWith('https://')) {
      total += 23 + word.slice(end).reduce((n, ch) => n + xWeight(ch.codePointAt(0)), 0);
    } else {
      total += word.reduce((n, ch) => n + xWeight(ch.codePointAt(0)), 0);
    }
    word = [];
  };
  for (const ch of text) {
    word.push(ch);
    if (isSpace(ch)) flush();
  }
  flush();
  return total;
}

const chars = (s) => Array.from(s).length;
const isVideo = (u) => /\.(mp4|mov|m4v|webm)$/i.test(u.split(/[?#]/)[0]);
const isImage = (u) => /\.(jpe?g|png|webp|gif)$/i.test(u.split(/[?#]/)[0]);

// For each platform: the counters to show and the problems that would make the hub refuse the post.
function platformChecks(p, f) {
  const n = chars(f.text);
  const counters = [];
  const problems = [];
  const limit = (label, used, max, field) => {
    counters.push({ label, used, max, field });
    if (used > max)
      problems.push({
        field,
        message: `${platformName(p)}: ${label} is ${numFmt.format(used - max)} over the limit of ${numFmt.format(max)}`,
      });
  };
  const empty = !f.text.trim();
  switch (p) {
    case 'x':
      limit('text (weighted)', xWeightedLength(f.text), 280, 'text');
      if (empty && !f.media.length) problems.push({ field: 'text', message: 'X needs text or media' });
      break;
    case 'linkedin':
      limit('text', n, 3000, 'text');
      if (empty) problems.push({ field: 'text', message: 'LinkedIn needs text' });
      break;
    case 'facebook':
      limit('text', n, 63206, 'text');
      if (empty && !f.media.length) problems.push({ field: 'text', message: 'Facebook needs text or an image' });
      break;
    case 'instagram':
      limit('caption', n, 2200, 'text');
      if (!f.media.some((u) => isImage(u) || isVideo(u)))
        problems.push({ field: 'media', message: 'Instagram needs an image or a video: it has no text-only posts' });
      break;
    case 'reddit':
      limit('title', chars(f.title), 300, 'title');
      limit('text', n, 40000, 'text');
      if (!f.title.trim()) problems.push({ field: 'title', message: 'Reddit needs a title' });
      if (!f.subreddit) problems.push({ field: 'subreddit', message: 'Reddit needs a subreddit' });
      else if (!/^\w+$/.test(f.subreddit))
        problems.push({ field: 'subreddit', message: 'A subreddit name is letters, digits and underscores' });
      break;
    case 'youtube':
      limit('title', chars(f.title), 100, 'title');
      if (!f.media.length || !isVideo(f.media[0]))
        problems.push({ field: 'media', message: 'YouTube needs a video URL (.mp4, .mov, .m4v, .webm) first' });
      break;
    case 'tiktok':
      if (!f.media.length) problems.push({ field: 'media', message: 'TikTok needs a video or photos' });
      break;
    default:
      break;
  }
  return { counters, problems };
}

function readCompose() {
  const ids = Array.from(document.querySelectorAll('#c-account-list input[type=checkbox]:checked')).map((i) => i.value);
  const selected = ids.map((id) => state.accounts.find((a) => a.id === id)).filter(Boolean);
  return {
    selected,
    text: $('c-text').value,
    title: $('c-title').value.trim(),
    media: $('c-media')
      .value.split('\n')
      .map((s) => s.trim())
      .filter(Boolean),
    subreddit: $('c-subreddit')
      .value.trim()
      .replace(/^\/?r\//i, ''),
    tiktokPrivacy: $('c-tiktok-privacy').value,
    youtubePrivacy: $('c-yt-privacy').value,
    later: $('c-when-later').checked,
    scheduled: $('c-scheduled').value,
  };
}

function renderCompose() {
  const box = $('c-account-list');
  const key = JSON.stringify(state.accounts.map((a) => [a.id, a.status, a.display_name, a.avatar_url]));
  if (state.renderKeys.compose !== key) {
    state.renderKeys.compose = key;
    const checked = new Set(Array.from(box.querySelectorAll('input:checked')).map((i) => i.value));
    if (!state.accounts.length) {
      box.replaceChildren(
        h(
          'p',
          { class: 'muted' },
          'No accounts connected yet. ',
          h('a', { href: '#accounts', text: 'Connect one' }),
          ' first.',
        ),
      );
    } else {
      box.replaceChildren(
        ...state.accounts.map((a) => {
          const id = `c-acc-${a.id}`;
          const warn = NEEDS_ATTENTION.includes(a.status);
          return h(
            'label',
            { class: 'account-option', for: id },
            h('input', {
              type: 'checkbox',
              id,
              value: a.id,
              checked: checked.has(a.id),
              dataset: { platform: a.platform },
            }),
            avatar(a, 'avatar-sm'),
            h(
              'span',
              { class: 'account-option-text' },
              h('span', { class: 'account-option-name', text: accountLabel(a) }),
              h(
                'span',
                { class: 'account-option-platform' },
                platformName(a.platform),
                warn
                  ? h(
                      'span',
                      { class: `option-status tone-text-${STATUS[a.status].tone}`, title: statusDetail(a) },
                      icon(STATUS[a.status].icon),
                      STATUS[a.status].label,
                    )
                  : null,
              ),
            ),
          );
        }),
      );
    }
  }
  updateCompose();
}

function updateCompose() {
  const f = readCompose();
  const platforms = [...new Set(f.selected.map((a) => a.platform))];
  $('opt-reddit').hidden = !platforms.includes('reddit');
  $('opt-tiktok').hidden = !platforms.includes('tiktok');
  $('opt-youtube').hidden = !platforms.includes('youtube');
  $('c-when-picker').hidden = !f.later;
  $('c-submit').textContent = f.later ? 'Schedule post' : 'Publish now';
  // Time zone and the UTC instant the choice means.
  const when = scheduledInstant(f);
  $('c-tz').textContent = when
    ? `Your time zone: ${timeZone}. Publishes ${shortFmt.format(when)} (${when.toISOString().slice(0, 16).replace('T', ' ')} UTC).`
    : `Times are in your time zone: ${timeZone}.`;
  announceLimits(
    platforms.map((p) => [p, platformChecks(p, f).problems.filter((x) => x.field === 'text' || x.field === 'title')]),
  );
  const box = $('c-limits');
  box.closest('.compose-side').classList.toggle('is-empty', !platforms.length);
  if (!platforms.length) {
    box.replaceChildren(h('p', { class: 'muted', text: 'Pick accounts to see each platform’s limits as you type.' }));
    return;
  }
  box.replaceChildren(
    ...platforms.map((p) => {
      const { counters, problems } = platformChecks(p, f);
      const ok = problems.length === 0;
      return h(
        'div',
        { class: `limit-card ${ok ? '' : 'has-problem'}`.trim(), dataset: { platform: p } },
        h(
          'div',
          { class: 'limit-head' },
          platformMark(p),
          h('strong', { text: platformName(p) }),
          ok
            ? h('span', { class: 'limit-ok' }, icon('check'), 'Ready')
            : h('span', { class: 'limit-bad' }, icon('alert'), 'Needs attention'),
        ),
        ...counters.map((c) => {
          const over = c.used > c.max;
          const near = !over && c.used > c.max * 0.9;
          const pct = Math.min(100, Math.round((c.used / c.max) * 100));
          const meter = h(
            'span',
            { class: `meter ${over ? 'over' : near ? 'near' : ''}`.trim(), 'aria-hidden': 'true' },
            h('span', { class: `meter-fill w-${Math.round(pct / 5) * 5}` }),
          );
          return h(
            'div',
            { class: `limit-row ${over ? 'over' : ''}`.trim(), dataset: { counter: `${p}-${c.field}` } },
            h('span', { class: 'limit-label', text: c.label }),
            meter,
            h('span', { class: 'limit-count', text: `${numFmt.format(c.used)} / ${numFmt.format(c.max)}` }),
            over ? h('span', { class: 'limit-over' }, icon('alert'), `${numFmt.format(c.used - c.max)} over`) : null,
          );
        }),
        ...problems
          .filter((x) => !/over the limit/.test(x.message))
          .map((x) => h('p', { class: 'limit-problem' }, icon('info'), x.message.replace(/^\w+: /, ''))),
      );
    }),
  );
}

// Screen readers hear when a text crosses a platform's limit, not every keystroke.
const limitState = new Map();
function announceLimits(entries) {
  const changes = [];
  for (const [p, over] of entries) {
    const now = over.some((x) => /over the limit/.test(x.message));
    const before = limitState.get(p) || false;
    if (now !== before)
      changes.push(
        now ? over.find((x) => /over the limit/.test(x.message)).message : `${platformName(p)}: within the limit again`,
      );
    limitState.set(p, now);
  }
  if (changes.length) $('c-limits-live').textContent = changes.join('. ');
}

function scheduledInstant(f) {
  if (!f.later || !f.scheduled) return null;
  // A datetime-local value has no offset: the Date constructor reads it in the browser's time zone.
  const d = new Date(f.scheduled);
  return Number.isNaN(d.getTime()) ? null : d;
}

const FIELD_IDS = {
  accounts: 'c-accounts',
  title: 'c-title',
  text: 'c-text',
  media: 'c-media',
  subreddit: 'c-subreddit',
  'tiktok-privacy': 'c-tiktok-privacy',
  'yt-privacy': 'c-yt-privacy',
  when: 'c-when',
};

// The hub's field names (`text (x)`, `media_urls[0]`, `options.subreddit`, `account_ids[1]`) → ours.
function fieldKey(field) {
  const f = field.replace(/\s*\(.*\)$/, '');
  if (f.startsWith('account')) return 'accounts';
  if (f.startsWith('media_urls')) return 'media';
  if (f === 'options.subreddit' || f === 'options.kind') return 'subreddit';
  if (f === 'options.privacy_level') return 'tiktok-privacy';
  if (f === 'options.privacy_status') return 'yt-privacy';
  if (f === 'scheduled_at') return 'when';
  if (f === 'title' || f === 'text') return f;
  return null;
}

function clearComposeErrors() {
  for (const el of document.querySelectorAll('#compose-form .field-error')) {
    el.hidden = true;
    el.replaceChildren();
  }
  for (const el of document.querySelectorAll('#compose-form [aria-invalid]')) el.removeAttribute('aria-invalid');
  $('compose-summary').hidden = true;
  $('compose-summary').replaceChildren();
}

// Editing a field takes its error away (the summary goes when nothing is left in it).
function clearFieldError(target) {
  const field = target.closest('#c-accounts, #c-when') || target;
  if (!field.id || field.getAttribute('aria-invalid') !== 'true') return;
  field.removeAttribute('aria-invalid');
  const err = $(`${field.id}-error`);
  if (err) {
    err.hidden = true;
    err.replaceChildren();
  }
  const summary = $('compose-summary');
  for (const a of summary.querySelectorAll(`a[href="#${CSS.escape(field.id)}"]`)) a.closest('li').remove();
  if (!summary.querySelector('li')) summary.hidden = true;
}

function showComposeErrors(problems, heading) {
  const byField = new Map();
  const general = [];
  for (const p of problems) {
    const k = p.key;
    if (k && FIELD_IDS[k]) {
      if (!byField.has(k)) byField.set(k, []);
      byField.get(k).push(p.message);
    } else general.push(p.message);
  }
  const summaryItems = [];
  for (const [k, messages] of byField) {
    const id = FIELD_IDS[k];
    const err = $(`${id}-error`);
    err.replaceChildren(icon('alert'), messages.join(' · '));
    err.hidden = false;
    $(id).setAttribute('aria-invalid', 'true');
    for (const m of messages)
      summaryItems.push(
        h('li', {}, h('a', { href: `#${id}`, onclick: (ev) => (ev.preventDefault(), focusField(id)), text: m })),
      );
  }
  for (const m of general) summaryItems.push(h('li', { text: m }));
  const summary = $('compose-summary');
  summary.replaceChildren(
    h('p', { class: 'error-summary-title' }, icon('alert'), heading),
    h('ul', {}, ...summaryItems),
  );
  summary.hidden = false;
  summary.focus();
}

function focusField(id) {
  const el = $(id);
  const target = el.matches('fieldset') ? el.querySelector('input') : el;
  target?.focus();
}

function optionsFor(platform, f) {
  if (platform === 'reddit') return { subreddit: f.subreddit };
  if (platform === 'tiktok') return { privacy_level: f.tiktokPrivacy };
  if (platform === 'youtube') return { privacy_status: f.youtubePrivacy };
  return null;
}

function setupCompose() {
  const form = $('compose-form');
  form.addEventListener('input', (ev) => {
    clearFieldError(ev.target);
    updateCompose();
  });
  form.addEventListener('change', updateCompose);
  const now = new Date(Date.now() - new Date().getTimezoneOffset() * 60000);
  $('c-scheduled').min = now.toISOString().slice(0, 16);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearComposeErrors();
    const f = readCompose();
    const problems = [];
    if (!f.selected.length) problems.push({ key: 'accounts', message: 'Pick at least one account' });
    for (const p of new Set(f.selected.map((a) => a.platform))) {
      for (const x of platformChecks(p, f).problems)
        problems.push({
          key: x.field,
          message: x.message.startsWith(platformName(p)) ? x.message : `${platformName(p)}: ${x.message}`,
        });
    }
    const when = scheduledInstant(f);
    if (f.later && !when) problems.push({ key: 'when', message: 'Pick a date and time' });
    else if (when && when.getTime() < Date.now() - 60000)
      problems.push({ key: 'when', message: 'That time has passed: pick one in the future, or publish now' });
    if (problems.length) {
      showComposeErrors(problems, 'The post cannot go out yet:');
      return;
    }
    // Options are per platform and the hub refuses options a platform does not take, so accounts
    // are sent in groups that share their options: usually a single request.
    const groups = new Map();
    for (const a of f.selected) {
      const opts = optionsFor(a.platform, f);
      const k = opts ? a.platform : '';
      if (!groups.has(k)) groups.set(k, { options: opts, accounts: [] });
      groups.get(k).accounts.push(a);
    }
    const submit = $('c-submit');
    submit.disabled = true;
    submit.setAttribute('aria-busy', 'true');
    $('c-submit-hint').textContent = 'Sending…';
    const done = [];
    const failed = [];
    for (const g of groups.values()) {
      const body = { account_ids: g.accounts.map((a) => a.id), text: f.text };
      if (f.title) body.title = f.title;
      if (f.media.length) body.media_urls = f.media;
      if (g.options) body.options = g.options;
      if (when) body.scheduled_at = when.toISOString();
      try {
        const r = await api('POST', '/api/posts', { body, headers: { 'Idempotency-Key': crypto.randomUUID() } });
        done.push(...(r?.items || (r ? [r] : [])));
      } catch (e) {
        if (e.status === 401) return;
        const mapped = (e.fields?.length ? e.fields : [{ field: '', message: e.message }]).map((x) => {
          const m = x.field.match(/^account_ids\[(\d+)\]$/);
          const acc = m ? g.accounts[Number(m[1])] : null;
          const platform =
            (x.field.match(/\((\w+)\)$/) || [])[1] || (g.accounts.length === 1 ? g.accounts[0].platform : null);
          const prefix = acc ? `${accountLabel(acc)}: ` : platform ? `${platformName(platform)}: ` : '';
          return { key: fieldKey(x.field), message: `${prefix}${x.message}` };
        });
        failed.push(...mapped);
      }
    }
    submit.disabled = false;
    submit.removeAttribute('aria-busy');
    $('c-submit-hint').textContent = '';
    if (done.length) {
      const names = [...new Set(done.map((p) => platformName(p.platform)))].join(', ');
      const whenText = when ? `for ${shortFmt.format(when)}` : 'to publish now';
      notice('success', `Scheduled ${done.length} ${done.length === 1 ? 'post' : 'posts'} on ${names} ${whenText}.`, {
        action: { label: 'See the queue', run: () => (location.hash = '#posts') },
      });
    }
    if (failed.length) {
      showComposeErrors(failed, done.length ? 'Some accounts refused the post:' : 'The hub refused the post:');
      return;
    }
    $('c-text').value = '';
    $('c-title').value = '';
    $('c-media').value = '';
    updateCompose();
  });
}

// ---------------------------------------------------------------------------------------------
// Queue and history.

async function loadPosts() {
  const [scheduled, publishing, published, failed, unknown] = await Promise.all(
    ['scheduled', 'publishing', 'published', 'failed', 'outcome_unknown'].map((s) =>
      listAll(`/api/posts?status=${s}&limit=100`, 2),
    ),
  );
  if (!state.accounts.length) state.accounts = await listAll('/api/accounts?limit=200');
  const at = (p) => p.published_at || p.next_attempt_at || p.scheduled_at || p.created_at;
  state.queue = [...publishing, ...scheduled].sort((a, b) => a.scheduled_at.localeCompare(b.scheduled_at));
  state.history = [...published, ...failed, ...unknown].sort((a, b) => at(b).localeCompare(at(a)));
  renderPosts();
}

function accountFor(post) {
  return state.accounts.find((a) => a.id === post.account_id);
}

function postRow(p) {
  const meta = POST_STATUS[p.status] || { label: p.status, icon: 'info', tone: 'muted' };
  const acc = accountFor(p);
  const head = h(
    'div',
    { class: 'post-head' },
    platformMark(p.platform),
    h('span', { class: 'post-account', text: acc ? accountLabel(acc) : platformName(p.platform) }),
    acc?.username && acc.display_name ? h('span', { class: 'muted', text: `@${acc.username}` }) : null,
    badge(p.status === 'scheduled' && p.attempts > 0 ? { label: 'Retrying', icon: 'sync', tone: 'warn' } : meta),
  );
  const body = h(
    'div',
    { class: 'post-body' },
    p.title ? h('p', { class: 'post-title', text: p.title }) : null,
    h('p', { class: 'post-text', text: p.text || '(no text)' }),
  );
  const facts = h('p', { class: 'post-facts' });
  const actions = h('div', { class: 'post-actions' });
  const extra = [];
  switch (p.status) {
    case 'scheduled':
      facts.append(
        icon('calendar'),
        timeEl(p.scheduled_at, new Date(p.scheduled_at) > new Date() ? 'Scheduled ' : 'Due '),
        ` · ${shortFmt.format(new Date(p.scheduled_at))}`,
      );
      if (p.attempts > 0) {
        extra.push(
          h(
            'p',
            { class: 'post-note tone-warn' },
            icon('alert'),
            h(
              'span',
              {},
              `Attempt ${p.attempts} failed${p.error ? `: “${p.error}”` : ''}. `,
              p.next_attempt_at ? timeEl(p.next_attempt_at, 'Next try ') : null,
            ),
          ),
        );
      }
      actions.append(
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn-secondary btn-small',
            dataset: { action: 'cancel' },
            onclick: (ev) => cancelPost(p, ev.currentTarget),
          },
          'Cancel',
        ),
      );
      break;
    case 'publishing':
      facts.append(icon('send'), `Publishing now (attempt ${Math.max(1, p.attempts)})`);
      break;
    case 'published':
      facts.append(icon('check'), timeEl(p.published_at || p.scheduled_at, 'Published '));
      if (p.attempts > 1) facts.append(` · after ${p.attempts} attempts`);
      if (p.url) {
        actions.append(
          h(
            'a',
            {
              class: 'btn btn-secondary btn-small',
              href: p.url,
              target: '_blank',
              rel: 'noopener noreferrer',
              dataset: { action: 'open' },
            },
            `View on ${platformName(p.platform)}`,
            icon('external'),
            h('span', { class: 'visually-hidden', text: ' (opens in a new tab)' }),
          ),
        );
      }
      break;
    case 'failed':
    case 'outcome_unknown': {
      const attempts = `${p.attempts} ${p.attempts === 1 ? 'attempt' : 'attempts'}`;
      facts.append(
        icon(meta.icon),
        p.status === 'failed' ? `Failed after ${attempts}` : `Unknown after ${attempts}`,
        ' · scheduled ',
        timeEl(p.scheduled_at),
      );
      if (p.status === 'outcome_unknown') {
        extra.push(
          h(
            'p',
            { class: 'post-note tone-warn' },
            icon('question'),
            `nikara could not tell whether ${platformName(p.platform)} published this post. Check there before retrying.`,
          ),
        );
      }
      if (p.error)
        extra.push(
          h(
            'blockquote',
            { class: 'platform-said' },
            h('span', { class: 'said-who', text: `${platformName(p.platform)} said` }),
            h('span', { text: p.error }),
          ),
        );
      actions.append(
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn-secondary btn-small',
            dataset: { action: 'retry' },
            onclick: () => retryPost(p),
          },
          icon('sync'),
          'Retry',
        ),
      );
      break;
    }
    default:
      break;
  }
  return h(
    'li',
    { class: `post-row status-${p.status}`, dataset: { key: p.id, status: p.status } },
    h('div', { class: 'post-main' }, head, body, facts, ...extra),
    actions.childNodes.length ? actions : null,
  );
}

function renderPosts() {
  for (const [listId, countId, items, empty] of [
    ['queue-list', 'queue-count', state.queue, 'Nothing waiting. Scheduled posts appear here until they go out.'],
    ['history-list', 'history-count', state.history, 'Nothing published yet. Published and failed posts appear here.'],
  ]) {
    const list = $(listId);
    const key = JSON.stringify([items, state.accounts.map((a) => [a.id, a.display_name])]);
    if (state.renderKeys[listId] === key) continue;
    state.renderKeys[listId] = key;
    $(countId).textContent = items.length ? `(${items.length})` : '';
    const focus = rememberFocus(list);
    list.replaceChildren(...(items.length ? items.map(postRow) : [h('li', { class: 'empty-row muted', text: empty })]));
    restoreFocus(list, focus);
  }
}

async function cancelPost(p, button) {
  button.disabled = true;
  try {
    await api('DELETE', `/api/posts/${encodeURIComponent(p.id)}`);
    notice(
      'success',
      `Cancelled the ${platformName(p.platform)} post scheduled ${shortFmt.format(new Date(p.scheduled_at))}.`,
    );
  } catch (e) {
    if (e.status === 409)
      notice('warning', 'Too late to cancel: this post is already publishing or published.', { details: e.message });
    else reportError(e, 'Could not cancel');
  }
  await loadPosts().catch((e) => reportError(e, 'Could not refresh'));
  $('queue-title').focus();
}

async function retryPost(p) {
  const unknown = p.status === 'outcome_unknown';
  $('dlg-retry-title').textContent = unknown ? 'Retry a post that may already be live?' : 'Retry this post?';
  $('dlg-retry-body').textContent = unknown
    ? `nikara does not know whether ${platformName(p.platform)} published it. Look for it on ${platformName(p.platform)} first: if it is there, retrying publishes it a second time.`
    : `It goes back into the queue and ${platformName(p.platform)} is asked again now.`;
  $('dlg-retry-confirm').textContent = unknown ? 'Retry anyway' : 'Retry';
  if ((await openDialog($('dlg-retry'))) !== 'confirm') return;
  try {
    await api('POST', `/api/posts/${encodeURIComponent(p.id)}/retry`);
    notice('success', `Retrying: the ${platformName(p.platform)} post is back in the queue.`);
  } catch (e) {
    reportError(e, 'Could not retry');
  }
  await loadPosts().catch((e) => reportError(e, 'Could not refresh'));
}

// ---------------------------------------------------------------------------------------------
// Engagement.

const SERIES = [
  { key: 'likes', label: 'Likes', icon: 'heart', stroke: '#4f46e5', dash: [], fill: 'rgba(79, 70, 229, 0.07)' },
  { key: 'comments', label: 'Comments', icon: 'comment', stroke: '#0f766e', dash: [8, 4] },
  { key: 'shares', label: 'Shares', icon: 'share', stroke: '#b45309', dash: [2, 4] },
  { key: 'views', label: 'Views', icon: 'eye', stroke: '#64748b', dash: [12, 4, 2, 4] },
];

function utcDay(offsetDays) {
  const d = new Date();
  d.setUTCHours(0, 0, 0, 0);
  d.setUTCDate(d.getUTCDate() + offsetDays);
  return d;
}

async function loadEngagement() {
  const select = $('e-platform');
  const mine = [...new Set(state.accounts.map((a) => a.platform))];
  const current = select.value;
  if (select.options.length !== mine.length + 1) {
    select.replaceChildren(
      h('option', { value: '', text: 'All platforms' }),
      ...mine.map((p) => h('option', { value: p, text: platformName(p), selected: p === current })),
    );
  }
  const from = utcDay(-29).toISOString().slice(0, 10);
  const to = utcDay(0).toISOString().slice(0, 10);
  const platform = select.value;
  const q = `from=${from}&to=${to}${platform ? `&platform=${encodeURIComponent(platform)}` : ''}`;
  const [series, published] = await Promise.all([
    api('GET', `/api/analytics/engagement?${q}`),
    listAll(`/api/posts?status=published&limit=20`, 1),
  ]);
  const days = [];
  for (let i = -29; i <= 0; i++) days.push(utcDay(i));
  const index = new Map(days.map((d, i) => [d.toISOString().slice(0, 10), i]));
  const cols = Object.fromEntries(SERIES.map((s) => [s.key, days.map(() => 0)]));
  for (const pt of series?.series || []) {
    const i = index.get(pt.date);
    if (i === undefined) continue;
    for (const s of SERIES) cols[s.key][i] += Number(pt[s.key] || 0);
  }
  const key = JSON.stringify([cols, platform]);
  if (state.renderKeys.engagement !== key) {
    state.renderKeys.engagement = key;
    renderTiles(cols);
    renderChart(days, cols);
    renderDayTable(days, cols);
  }
  const posts = published.filter((p) => !platform || p.platform === platform);
  const totals = await mapLimit(posts, 4, (p) =>
    api('GET', `/api/posts/${encodeURIComponent(p.id)}/engagement`).catch(() => null),
  );
  const pkey = JSON.stringify([posts.map((p) => p.id), totals]);
  if (state.renderKeys.perPost !== pkey) {
    state.renderKeys.perPost = pkey;
    renderPerPost(posts, totals);
  }
}

async function mapLimit(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

function renderTiles(cols) {
  $('e-tiles').replaceChildren(
    ...SERIES.map((s) => {
      const total = cols[s.key].reduce((a, b) => a + b, 0);
      // Views are a running count as of each day's last sync: the latest one is the total.
      const value = s.key === 'views' ? [...cols.views].reverse().find((v) => v > 0) || 0 : total;
      return h(
        'div',
        { class: `tile card tile-${s.key}` },
        h('p', { class: 'tile-label' }, icon(s.icon), s.label),
        h('p', { class: 'tile-value', text: numFmt.format(value) }),
        h('p', { class: 'tile-hint muted', text: s.key === 'views' ? 'as of the latest sync' : 'last 30 days' }),
      );
    }),
  );
}

function renderChart(days, cols) {
  const el = $('e-chart');
  const total = SERIES.filter((s) => s.key !== 'views').reduce((n, s) => n + cols[s.key].reduce((a, b) => a + b, 0), 0);
  const summary = SERIES.map(
    (s) => `${numFmt.format(cols[s.key].reduce((a, b) => a + b, 0))} ${s.label.toLowerCase()}`,
  ).join(', ');
  el.setAttribute('aria-label', `Engagement per day over the last 30 days: ${summary}. The table below has every day.`);
  $('e-chart-caption').textContent =
    total === 0 && cols.views.every((v) => v === 0)
      ? 'No engagement yet. Numbers arrive as the platforms report them (webhooks and periodic syncs).'
      : cols.views.some((v) => v > 0)
        ? 'Likes, comments and shares per day (left axis); views as of each day’s last sync (right axis). Days in UTC.'
        : 'Likes, comments and shares per day. Days in UTC.';
  if (typeof window.uPlot !== 'function') {
    el.replaceChildren(
      h('p', { class: 'muted', text: 'The chart library did not load; the table below has the numbers.' }),
    );
    return;
  }
  const xs = days.map((d) => d.getTime() / 1000);
  // Views get their own (right) axis, and only when some platform reported any.
  const shown = SERIES.filter((s) => s.key !== 'views' || cols.views.some((v) => v > 0));
  const withViews = shown.length === SERIES.length;
  const data = [xs, ...shown.map((s) => cols[s.key])];
  const width = Math.max(280, el.clientWidth || 600);
  const height = window.matchMedia('(max-width: 640px)').matches ? 220 : 280;
  const axisFont = '12px -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, Arial, "Liberation Sans", sans-serif';
  const opts = {
    width,
    height,
    tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
    cursor: { drag: { x: false, y: false }, points: { size: 7 } },
    legend: { live: false },
    scales: {
      x: { time: true },
      y: { range: (u, min, max) => [0, Math.max(4, Math.ceil(max * 1.15))] },
      v: { range: (u, min, max) => [0, Math.max(4, Math.ceil(max * 1.15))] },
    },
    series: [
      { label: 'Day', value: (u, v) => (v == null ? '' : dayFmt.format(new Date(v * 1000))) },
      ...shown.map((s) => ({
        label: s.label,
        stroke: s.stroke,
        fill: s.fill,
        width: s.key === 'views' ? 1.5 : 2,
        dash: s.dash,
        scale: s.key === 'views' ? 'v' : 'y',
        points: { show: false },
        value: (u, v) => (v == null ? '' : numFmt.format(v)),
      })),
    ],
    axes: [
      {
        stroke: '#4b5563',
        font: axisFont,
        grid: { stroke: '#eceef2', width: 1 },
        ticks: { stroke: '#d9dde3' },
        values: (u, splits) => splits.map((v) => dayFmt.format(new Date(v * 1000))),
      },
      {
        scale: 'y',
        stroke: '#4b5563',
        font: axisFont,
        grid: { stroke: '#eceef2', width: 1 },
        ticks: { show: false },
        size: 44,
      },
      ...(withViews
        ? [
            {
              scale: 'v',
              side: 1,
              stroke: '#64748b',
              font: axisFont,
              grid: { show: false },
              ticks: { show: false },
              size: 52,
            },
          ]
        : []),
    ],
  };
  if (state.chart) state.chart.destroy();
  el.replaceChildren();
  state.chart = new window.uPlot(opts, data, el);
}

function resizeChart() {
  const el = $('e-chart');
  if (state.chart && el.clientWidth) state.chart.setSize({ width: el.clientWidth, height: state.chart.height });
}

function renderDayTable(days, cols) {
  const rows = days
    .map((d, i) => ({ d, i }))
    .reverse()
    .map(({ d, i }) =>
      h(
        'tr',
        {},
        h('th', { scope: 'row', text: dayFmt.format(d) }),
        ...SERIES.map((s) => h('td', { text: numFmt.format(cols[s.key][i]) })),
      ),
    );
  $('e-table').replaceChildren(
    h(
      'table',
      { class: 'data-table' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', { scope: 'col', text: 'Day (UTC)' }),
          ...SERIES.map((s) => h('th', { scope: 'col', text: s.label })),
        ),
      ),
      h('tbody', {}, ...rows),
    ),
  );
}

function renderPerPost(posts, totals) {
  const box = $('e-posts');
  if (!posts.length) {
    box.replaceChildren(
      h('p', {
        class: 'muted pad',
        text: 'No published posts yet. Once a post is live, its likes, comments, shares and views show here.',
      }),
    );
    return;
  }
  const cell = (v) => h('td', { text: v === null || v === undefined ? '—' : numFmt.format(v) });
  box.replaceChildren(
    h(
      'table',
      { class: 'data-table per-post' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', { scope: 'col', text: 'Post' }),
          ...['Likes', 'Comments', 'Shares', 'Views'].map((t) => h('th', { scope: 'col', class: 'num', text: t })),
          h('th', { scope: 'col', text: 'Updated' }),
        ),
      ),
      h(
        'tbody',
        {},
        ...posts.map((p, i) => {
          const e = totals[i];
          const acc = accountFor(p);
          const excerpt = (p.title || p.text || '').slice(0, 80);
          return h(
            'tr',
            { dataset: { key: p.id } },
            h(
              'th',
              { scope: 'row', class: 'post-cell' },
              h(
                'span',
                { class: 'post-cell-head' },
                platformMark(p.platform, 'pmark-sm'),
                h('span', { class: 'post-cell-account', text: acc ? accountLabel(acc) : platformName(p.platform) }),
              ),
              p.url
                ? h(
                    'a',
                    { href: p.url, target: '_blank', rel: 'noopener noreferrer', class: 'post-cell-text' },
                    excerpt || 'Open post',
                    h('span', { class: 'visually-hidden', text: ' (opens in a new tab)' }),
                  )
                : h('span', { class: 'post-cell-text', text: excerpt }),
            ),
            cell(e?.likes),
            cell(e?.comments),
            cell(e?.shares),
            cell(e?.views),
            h('td', {}, e?.updated_at ? timeEl(e.updated_at) : h('span', { class: 'muted', text: 'not yet' })),
          );
        }),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Start.

let polls = 0;
function poll() {
  polls += 1;
  if (!state.token || document.visibilityState !== 'visible') return;
  if (state.view === 'accounts') loadAccounts().catch(() => {});
  else if (state.view === 'posts') loadPosts().catch(() => {});
  else if (state.view === 'engagement' && polls % 5 === 0) loadEngagement().catch(() => {});
}

async function main() {
  takeTokenFromFragment();
  takeQuery();
  setupSignIn();
  setupCompose();
  $('posts-refresh').addEventListener('click', () => loadPosts().catch((e) => reportError(e, 'Could not refresh')));
  $('e-platform').addEventListener('change', () =>
    loadEngagement().catch((e) => reportError(e, 'Could not load engagement')),
  );
  $('skip-link').addEventListener('click', (ev) => {
    ev.preventDefault();
    const title = state.view ? $(`${state.view}-title`) : $('signin-title');
    (title && !title.closest('[hidden]') ? title : $('main')).focus();
  });
  window.addEventListener('hashchange', () => {
    // A `#token=…` link followed while the page is open signs in (again) with that token.
    if (/^#token=/.test(location.hash)) {
      takeTokenFromFragment();
      signIn(sessionStorage.getItem(TOKEN_KEY), true).catch((e) =>
        e.status === 401
          ? signOut('That token was refused. Paste a new one to continue.')
          : reportError(e, 'Could not sign in'),
      );
      return;
    }
    route(true);
  });
  window.addEventListener('resize', resizeChart);
  setInterval(tick, 30000);
  setInterval(poll, POLL_MS);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    showSignIn();
    return;
  }
  try {
    await signIn(token);
  } catch (e) {
    if (e.status === 401)
      signOut('Your session has ended (the token expired or was refused). Paste a new token to continue.');
    else {
      showSignIn();
      notice('error', `Could not reach the hub: ${e.message}`);
    }
  }
}

main();
