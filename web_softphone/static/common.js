// Shared by the agent desktop and the supervisor console: i18n, DOM helpers, REST and
// WebSocket (CTI) clients, the login form, the browser phone (WebRTC), tones, formatting.
// No build step, no dependencies: a plain ES module. Untrusted text only ever goes into
// textContent or attribute values, never into innerHTML.

import { STRINGS } from './i18n.js';

// ---------------------------------------------------------------------------- i18n

const LANG_KEY = 'hotline.lang';
const langListeners = [];

function pickLang() {
  let saved = null;
  try { saved = localStorage.getItem(LANG_KEY); } catch (e) { /* private mode */ }
  if (saved === 'en' || saved === 'zh') return saved;
  const langs = navigator.languages && navigator.languages.length ? navigator.languages
    : [navigator.language || 'en'];
  return String(langs[0]).toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

let lang = pickLang();

/** The current language, 'en' or 'zh'. */
export function currentLang() { return lang; }

/** The string `key` in the current language, "{name}" placeholders filled from `vars`. */
export function t(key, vars) {
  let s = STRINGS[lang][key];
  if (s === undefined) s = STRINGS.en[key];
  if (s === undefined) s = key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] === undefined ? m : String(vars[k])));
  return s;
}

/** `key` if it is a known string, else `fallback` (for codes coming from the server). */
export function tOr(key, fallback) {
  return STRINGS[lang][key] ?? STRINGS.en[key] ?? fallback;
}

/** Fill every [data-i18n], [data-i18n-title], [data-i18n-placeholder], [data-i18n-aria]. */
export function applyI18n(root = document) {
  for (const n of root.querySelectorAll('[data-i18n]')) n.textContent = t(n.dataset.i18n);
  for (const n of root.querySelectorAll('[data-i18n-title]')) n.title = t(n.dataset.i18nTitle);
  for (const n of root.querySelectorAll('[data-i18n-placeholder]')) {
    n.placeholder = t(n.dataset.i18nPlaceholder);
  }
  for (const n of root.querySelectorAll('[data-i18n-aria]')) {
    n.setAttribute('aria-label', t(n.dataset.i18nAria));
  }
}

export function onLangChange(fn) { langListeners.push(fn); }

export function setLang(next) {
  lang = next === 'zh' ? 'zh' : 'en';
  try { localStorage.setItem(LANG_KEY, lang); } catch (e) { /* ignore */ }
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  applyI18n(document);
  for (const fn of langListeners) fn(lang);
}

function setupLangToggle(button) {
  const label = () => {
    button.textContent = t('lang_other');
    button.title = t('lang_other_title');
  };
  label();
  onLangChange(label);
  button.addEventListener('click', () => setLang(lang === 'zh' ? 'en' : 'zh'));
}

// ----------------------------------------------------------------------------- DOM

/** `$('#id')` inside `root`. */
export function $(sel, root = document) { return root.querySelector(sel); }

/**
 * Make an element. `attrs`: `class`, `text` (textContent), `testid` (data-testid),
 * `dataset` (object), `on` (object of event -> handler), `hidden`, `disabled`, any other
 * attribute by name (never `style`). Children: nodes or strings (text nodes).
 */
export function el(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') n.className = v;
    else if (k === 'text') n.textContent = String(v);
    else if (k === 'testid') n.dataset.testid = v;
    else if (k === 'dataset') Object.assign(n.dataset, v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) n.addEventListener(ev, fn);
    else if (k === 'hidden' || k === 'disabled' || k === 'checked' || k === 'selected') n[k] = !!v;
    else if (k === 'value') n.value = v;
    else if (k === 'style') throw new Error('el(): no style attributes (CSP)');
    else n.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return n;
}

/** Replace the children of `node`. */
export function setChildren(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

export function show(node, visible) { node.hidden = !visible; }

const SVG_NS = 'http://www.w3.org/2000/svg';
/** An SVG element with attributes (presentation attributes, not style). */
export function svg(tag, attrs = {}, ...children) {
  const n = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === 'text') n.textContent = String(v);
    else if (k === 'testid') n.setAttribute('data-testid', v);
    else n.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c) n.append(c);
  return n;
}

// ---------------------------------------------------------------------- formatting

/** Seconds as m:ss or h:mm:ss ("—" for null). */
export function fmtDuration(sec) {
  if (sec === null || sec === undefined || !Number.isFinite(sec)) return '—';
  sec = Math.max(0, Math.floor(sec));
  const h = Math.floor(sec / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = sec % 60;
  const ss = String(s).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** An ISO time as local HH:MM:SS (today) or MM-DD HH:MM (other days). */
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = iso instanceof Date ? iso : new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const now = new Date();
  const pad = (n) => String(n).padStart(2, '0');
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === now.toDateString()) return hms;
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** An ISO time as local YYYY-MM-DD HH:MM:SS. */
export function fmtDateTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A 0..1 ratio as "85%" ("—" for null). */
export function fmtPct(x, digits = 0) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return `${(x * 100).toFixed(digits)}%`;
}

/** Seconds as "12 s" / "3:05" ("—" for null). */
export function fmtSec(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return x < 60 ? `${Math.round(x)} s` : fmtDuration(x);
}

/** Local date as YYYY-MM-DD. */
export function isoDate(d = new Date()) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Run `fn` every second (one shared timer); returns a function that stops it. */
const tickers = new Set();
let tickTimer = null;
export function everySecond(fn) {
  tickers.add(fn);
  if (tickTimer === null) {
    tickTimer = setInterval(() => {
      for (const f of tickers) {
        try { f(); } catch (e) { console.error(e); }
      }
    }, 1000);
  }
  return () => tickers.delete(fn);
}

// --------------------------------------------------------------------------- REST

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** JSON request to the API; resolves to the parsed answer (null for 204), throws ApiError. */
export async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, t('err_network'));
  }
  if (resp.status === 204) return null;
  let data = null;
  const text = await resp.text();
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!resp.ok) {
    const err = new ApiError(resp.status, (data && data.error) || `HTTP ${resp.status}`);
    err.retryAfter = Number(resp.headers.get('Retry-After')) || null;
    throw err;
  }
  return data;
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// ------------------------------------------------------------------ banners, toast

const banners = new Map();

/** Show (or replace) the banner `key`; level 'error' | 'warn' | 'info'. */
export function banner(key, text, level = 'warn') {
  const box = document.getElementById('banners');
  if (!box) return;
  let node = banners.get(key);
  if (!node) {
    node = el('div', { role: level === 'error' ? 'alert' : 'status', testid: `banner-${key}` });
    banners.set(key, node);
    box.append(node);
  }
  node.className = `banner banner-${level}`;
  node.textContent = text;
}

export function clearBanner(key) {
  const node = banners.get(key);
  if (node) {
    node.remove();
    banners.delete(key);
  }
}

let toastTimer = null;
/** A short message at the bottom of the page. */
export function toast(text, level = 'info') {
  let box = document.getElementById('toast');
  if (!box) {
    box = el('div', { id: 'toast', testid: 'toast', role: 'status' });
    document.body.append(box);
  }
  box.className = `toast toast-${level} toast-show`;
  box.textContent = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.className = `toast toast-${level}`; }, level === 'error' ? 6000 : 3000);
}

/** Show `err` (an ApiError or Error) as an error toast. */
export function toastError(err) {
  toast(t('err_prefix', { msg: err && err.message ? err.message : String(err) }), 'error');
}

/** An in-page confirmation dialog (no window.confirm: tests and CSP friendly). */
export function confirmDialog(text) {
  return new Promise((resolve) => {
    const done = (v) => { overlay.remove(); document.removeEventListener('keydown', onKey); resolve(v); };
    const onKey = (e) => { if (e.key === 'Escape') done(false); };
    const ok = el('button', { class: 'btn danger', testid: 'confirm-ok', text: t('confirm'), on: { click: () => done(true) } });
    const overlay = el('div', { class: 'modal-overlay', testid: 'confirm-dialog' },
      el('div', { class: 'modal card', role: 'dialog', 'aria-modal': 'true' },
        el('p', { class: 'modal-text', text }),
        el('div', { class: 'modal-actions' },
          el('button', { class: 'btn', testid: 'confirm-cancel', text: t('cancel'), on: { click: () => done(false) } }),
          ok)));
    document.body.append(overlay);
    document.addEventListener('keydown', onKey);
    ok.focus();
  });
}

// ---------------------------------------------------------------------- WebSocket

/**
 * The CTI WebSocket `/api/ws`: events to `onEvent(msg)`, commands with `request(cmd,
 * args)` (a Promise of the `ok` reply; rejects with an ApiError carrying `status`).
 * Reconnects with backoff (1 s doubling to 30 s) and shows a banner meanwhile; a
 * session that ended (close code 4001, or /api/session answering 401) calls
 * `onSessionEnded` instead.
 */
export class Cti {
  constructor({ onEvent, onOpen, onClose, onSessionEnded }) {
    this.onEvent = onEvent;
    this.onOpen = onOpen || (() => {});
    this.onClose = onClose || (() => {});
    this.onSessionEnded = onSessionEnded || (() => location.reload());
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.everOpen = false;
  }

  get connected() { return !!this.ws && this.ws.readyState === WebSocket.OPEN; }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api/ws`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.addEventListener('open', () => {
      this.attempt = 0;
      this.everOpen = true;
      clearBanner('ws');
      this.onOpen();
    });
    ws.addEventListener('message', (e) => this._message(e.data));
    ws.addEventListener('close', (e) => this._closed(ws, e));
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
  }

  /** Send `{"id", "cmd", ...args}`; resolves with the reply, rejects with ApiError. */
  request(cmd, args = {}, timeoutMs = 15000) {
    if (!this.connected) return Promise.reject(new ApiError(0, t('ws_reconnecting')));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ApiError(504, `${cmd}: no answer`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...args, id, cmd }));
    });
  }

  _message(data) {
    let msg;
    try { msg = JSON.parse(data); } catch (e) { return; }
    if (!msg || typeof msg !== 'object') return;
    if (msg.id !== undefined && msg.id !== null && !msg.type) {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.ok) p.resolve(msg);
      else p.reject(new ApiError(msg.status || 500, msg.error || 'error'));
      return;
    }
    if (msg.type) {
      try { this.onEvent(msg); } catch (e) { console.error('event handler failed', msg.type, e); }
    } else if (msg.error) {
      console.warn('ws error', msg.error);
    }
  }

  async _closed(ws, e) {
    if (ws !== this.ws) return;
    this.ws = null;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ApiError(0, t('ws_reconnecting')));
    }
    this.pending.clear();
    this.onClose(e);
    if (this.stopped) return;
    if (e.code === 4001) {
      this.stopped = true;
      this.onSessionEnded();
      return;
    }
    // Closed before or after opening: is the session still there?
    try {
      await api('GET', '/api/session');
    } catch (err) {
      if (err.status === 401) {
        this.stopped = true;
        this.onSessionEnded();
        return;
      }
    }
    const delay = Math.min(30, 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
    this.attempt++;
    const until = Date.now() + delay * 1000;
    const update = () => {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      banner('ws', left > 0 ? t('ws_lost', { s: left }) : t('ws_reconnecting'), 'warn');
    };
    update();
    const countdown = setInterval(update, 1000);
    this.timer = setTimeout(() => {
      clearInterval(countdown);
      this.connect();
    }, delay * 1000);
  }
}

// -------------------------------------------------------------------------- login

/** The logged-in account, or null (401). Other errors throw. */
export async function getSession() {
  try {
    return await api('GET', '/api/session');
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

/** Show the login form (#login-view) until a login succeeds; resolves with the account. */
export function showLogin() {
  const view = $('#login-view');
  const app = $('#app');
  const form = $('#login-form');
  const user = $('#login-user');
  const pass = $('#login-pass');
  const error = $('#login-error');
  const submit = form.querySelector('[type=submit]');
  view.hidden = false;
  if (app) app.hidden = true;
  document.body.classList.add('logged-out');
  user.focus();
  return new Promise((resolve) => {
    const onSubmit = async (e) => {
      e.preventDefault();
      error.textContent = '';
      submit.disabled = true;
      submit.textContent = t('logging_in');
      try {
        const acct = await api('POST', '/api/login', { username: user.value.trim(), password: pass.value });
        form.removeEventListener('submit', onSubmit);
        pass.value = '';
        view.hidden = true;
        document.body.classList.remove('logged-out');
        resolve(acct);
      } catch (err) {
        if (err.status === 401) error.textContent = t('err_login');
        else if (err.status === 429) error.textContent = t('err_banned', { s: err.retryAfter || 60 });
        else error.textContent = err.message;
        pass.select();
      } finally {
        submit.disabled = false;
        submit.textContent = t('login');
      }
    };
    form.addEventListener('submit', onSubmit);
  });
}

/** Log out and reload the page (which shows the login form). */
export async function logout() {
  try { await api('POST', '/api/logout'); } catch (e) { /* reload anyway */ }
  location.reload();
}

/**
 * Page start: i18n, language toggle, logout button, then the session (login form if
 * needed). Resolves with the account.
 */
export async function boot() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  applyI18n(document);
  const toggle = document.querySelector('[data-testid="lang-toggle"]');
  if (toggle) setupLangToggle(toggle);
  const out = document.querySelector('[data-testid="btn-logout"]');
  if (out) out.addEventListener('click', logout);
  installAudioUnlock();
  for (;;) {
    try {
      const acct = await getSession();
      clearBanner('net');
      return acct || await showLogin();
    } catch (e) {
      banner('net', t('err_network'), 'error');
      await new Promise((r) => setTimeout(r, 3000));
    }
  }
}

// ---------------------------------------------------------------------- WebAudio

let audioCtx = null;

/** The page's one AudioContext (created on first use). */
export function audioContext() {
  if (!audioCtx) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    audioCtx = new Ctx({ latencyHint: 'interactive' });
  }
  if (audioCtx.state === 'suspended') audioCtx.resume().catch(() => {});
  return audioCtx;
}

function installAudioUnlock() {
  const unlock = () => {
    if (audioCtx && audioCtx.state === 'suspended') audioCtx.resume().catch(() => {});
    const remote = document.getElementById('remote-audio');
    if (remote && remote.srcObject && remote.paused) remote.play().catch(() => {});
    if (audioCtx && audioCtx.state === 'running') clearBanner('audio');
  };
  document.addEventListener('pointerdown', unlock, true);
  document.addEventListener('keydown', unlock, true);
}

/** RMS of an analyser's current window in dBFS (floored at -120). */
export function analyserLevel(analyser, buf) {
  if (!analyser) return -120;
  analyser.getFloatTimeDomainData(buf);
  let sum = 0;
  for (let i = 0; i < buf.length; i++) sum += buf[i] * buf[i];
  const rms = Math.sqrt(sum / buf.length);
  return rms > 0 ? Math.max(-120, 20 * Math.log10(rms)) : -120;
}

/** Drive a level meter (`.meter > .meter-bar`) from a dBFS getter, -60..0 dB; the
 * element's data-level is the current dBFS. */
export function meter(node, getDb) {
  const bar = node.querySelector('.meter-bar');
  let last = -1;
  const draw = () => {
    const db = getDb();
    const frac = Math.max(0, Math.min(1, (db + 60) / 60));
    const pct = Math.round(frac * 100);
    if (pct !== last) {
      bar.style.width = `${100 - pct}%`;  // the bar masks the unlit part of the scale
      node.dataset.level = db.toFixed(1);
      node.classList.toggle('hot', db > -6);
      last = pct;
    }
    requestAnimationFrame(draw);
  };
  requestAnimationFrame(draw);
}

/**
 * The ring tone: US 440+480 Hz 2 s on / 4 s off, or Chinese 450 Hz 1 s on / 4 s off
 * (chosen from the page language).
 */
export class RingTone {
  constructor() {
    this.playing = false;
    this.nodes = null;
    this.timer = null;
  }

  start() {
    if (this.playing) return;
    this.playing = true;
    const ctx = audioContext();
    const china = currentLang() === 'zh';
    const freqs = china ? [450] : [440, 480];
    const on = china ? 1.0 : 2.0;
    const period = china ? 5.0 : 6.0;
    const gain = ctx.createGain();
    gain.gain.value = 0;
    gain.connect(ctx.destination);
    const oscs = freqs.map((f) => {
      const o = ctx.createOscillator();
      o.frequency.value = f;
      o.connect(gain);
      o.start();
      return o;
    });
    this.nodes = { gain, oscs };
    const level = 0.12;
    const cycle = () => {
      if (!this.playing) return;
      const now = ctx.currentTime;
      gain.gain.cancelScheduledValues(now);
      gain.gain.setValueAtTime(0, now);
      gain.gain.linearRampToValueAtTime(level, now + 0.02);
      gain.gain.setValueAtTime(level, now + on - 0.02);
      gain.gain.linearRampToValueAtTime(0, now + on);
      this.timer = setTimeout(cycle, period * 1000);
    };
    cycle();
  }

  stop() {
    if (!this.playing) return;
    this.playing = false;
    clearTimeout(this.timer);
    if (this.nodes) {
      for (const o of this.nodes.oscs) {
        try { o.stop(); } catch (e) { /* already stopped */ }
        o.disconnect();
      }
      this.nodes.gain.disconnect();
      this.nodes = null;
    }
  }
}

const DTMF_FREQS = {
  1: [697, 1209], 2: [697, 1336], 3: [697, 1477], A: [697, 1633],
  4: [770, 1209], 5: [770, 1336], 6: [770, 1477], B: [770, 1633],
  7: [852, 1209], 8: [852, 1336], 9: [852, 1477], C: [852, 1633],
  '*': [941, 1209], 0: [941, 1336], '#': [941, 1477], D: [941, 1633],
};

/** A short local DTMF beep as feedback for a keypad press. */
export function dtmfBeep(digit) {
  const f = DTMF_FREQS[digit];
  if (!f) return;
  const ctx = audioContext();
  const gain = ctx.createGain();
  const now = ctx.currentTime;
  gain.gain.setValueAtTime(0.08, now);
  gain.gain.setValueAtTime(0, now + 0.12);
  gain.connect(ctx.destination);
  for (const hz of f) {
    const o = ctx.createOscillator();
    o.frequency.value = hz;
    o.connect(gain);
    o.start(now);
    o.stop(now + 0.13);
  }
  setTimeout(() => gain.disconnect(), 300);
}

// -------------------------------------------------------------------------- phone

const GATHER_TIMEOUT = 5000;   // ms to wait for ICE gathering (host candidates only)
const LOST_BANNER_AFTER = 20000;  // ms without audio before the red banner
const RESTART_MAX_DELAY = 10000;  // ms, backoff ceiling between ICE restarts

function waitGathering(pc, timeoutMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener('icegatheringstatechange', check);
      pc.removeEventListener('icecandidate', onCandidate);
      clearTimeout(timer);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    const onCandidate = (e) => { if (!e.candidate) done(); };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener('icegatheringstatechange', check);
    pc.addEventListener('icecandidate', onCandidate);
  });
}

/**
 * The browser phone: one RTCPeerConnection for the whole shift, negotiated over the
 * CTI WebSocket (`rtc_offer`), with ICE restarts when the network blips. Calls are
 * switched on the server; the page only sees `phone` events and sends `phone_*`
 * commands. `onChange()` is called whenever something shown may have changed.
 */
export class Phone {
  constructor(cti, { onChange }) {
    this.cti = cti;
    this.onChange = onChange || (() => {});
    this.status = { state: 'idle', call_id: null, peer: '', display: '', direction: null, monitor: null, echo: false };
    this.serverRtc = null;
    this.pc = null;
    this.mic = null;
    this.micError = null;
    this.unsupported = false;
    this.negotiating = false;
    this.failures = 0;
    this.nextAttempt = 0;
    this.lostSince = null;
    this.lastOfferAt = 0;
    this.started = false;
    this.remoteAnalyser = null;
    this.micAnalyser = null;
    this.remoteBuf = null;
    this.micBuf = null;
    this.freqBuf = null;
    this.audioEl = document.getElementById('remote-audio');
  }

  get state() { return this.status.state || 'idle'; }
  get rtcState() { return this.pc ? this.pc.connectionState : (this.unsupported ? 'none' : 'new'); }

  /** Microphone, peer connection, first offer; then a watchdog keeps it connected. */
  async start() {
    if (this.started) return;
    this.started = true;
    const ctx = audioContext();
    try {
      this.mic = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      clearBanner('mic');
    } catch (e) {
      this.micError = e;
      banner('mic', t('mic_denied', { msg: e.message || e.name }), 'error');
    }
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    if (this.mic) {
      for (const track of this.mic.getAudioTracks()) pc.addTrack(track, this.mic);
      const src = ctx.createMediaStreamSource(this.mic);
      this.micAnalyser = ctx.createAnalyser();
      this.micAnalyser.fftSize = 2048;
      this.micBuf = new Float32Array(this.micAnalyser.fftSize);
      src.connect(this.micAnalyser);
    } else {
      pc.addTransceiver('audio', { direction: 'sendrecv' });
    }
    pc.addEventListener('track', (e) => this._remoteTrack(e));
    pc.addEventListener('connectionstatechange', () => this._rtcChanged());
    this.lostSince = Date.now();
    setInterval(() => this._watchdog(), 1000);
    await this.negotiate(false);
  }

  /** Offer (an ICE restart when `restart`), wait for gathering, send, apply the answer. */
  async negotiate(restart) {
    const pc = this.pc;
    if (!pc || this.negotiating || this.unsupported || !this.cti.connected) return;
    this.negotiating = true;
    this.lastOfferAt = Date.now();
    try {
      if (pc.signalingState === 'have-local-offer') {
        await pc.setLocalDescription({ type: 'rollback' });
      }
      const again = restart && !!pc.remoteDescription;
      const offer = await pc.createOffer(again ? { iceRestart: true } : {});
      await pc.setLocalDescription(offer);
      await waitGathering(pc, GATHER_TIMEOUT);
      const reply = await this.cti.request('rtc_offer', { sdp: pc.localDescription.sdp, restart: again }, 30000);
      if (pc.signalingState !== 'have-local-offer') return;
      await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
    } catch (e) {
      if (e.status === 400 && /unknown command/.test(e.message || '')) {
        this.unsupported = true;
        banner('phone', t('phone_unsupported'), 'info');
      } else {
        console.warn('rtc_offer failed', e);
      }
      this.failures++;
      this.nextAttempt = Date.now() + Math.min(RESTART_MAX_DELAY, 1000 * 2 ** this.failures);
    } finally {
      this.negotiating = false;
      this.onChange();
    }
  }

  _remoteTrack(e) {
    // Ask for the smallest playout buffer: the server already smooths jitter (its own
    // jitter buffer per leg), and a headset user hears the delay (Chrome 114+).
    if (e.receiver && 'jitterBufferTarget' in e.receiver) {
      try { e.receiver.jitterBufferTarget = 0; } catch (err) { /* older browsers */ }
    }
    const stream = e.streams && e.streams[0] ? e.streams[0] : new MediaStream([e.track]);
    if (this.audioEl && this.audioEl.srcObject !== stream) {
      this.audioEl.srcObject = stream;
      this.audioEl.play().catch(() => banner('audio', t('audio_blocked'), 'info'));
    }
    // Chrome feeds a remote WebRTC stream to WebAudio only while a media element plays it.
    const ctx = audioContext();
    const src = ctx.createMediaStreamSource(stream);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 8192;
    analyser.smoothingTimeConstant = 0;
    const sink = ctx.createGain();
    sink.gain.value = 0;  // the <audio> element plays it; the graph only measures
    src.connect(analyser);
    analyser.connect(sink);
    sink.connect(ctx.destination);
    this.remoteAnalyser = analyser;
    this.remoteBuf = new Float32Array(analyser.fftSize);
    this.freqBuf = new Float32Array(analyser.frequencyBinCount);
  }

  _rtcChanged() {
    const st = this.pc.connectionState;
    if (st === 'connected') {
      this.lostSince = null;
      this.failures = 0;
      clearBanner('rtc');
    } else {
      if (this.lostSince === null) this.lostSince = Date.now();
      // First restart half a second after the drop; later ones follow the backoff.
      if ((st === 'disconnected' || st === 'failed') && this.failures === 0) {
        this.nextAttempt = Date.now() + 500;
      }
    }
    this.onChange();
  }

  _watchdog() {
    const pc = this.pc;
    if (!pc || this.unsupported) return;
    const st = pc.connectionState;
    const serverBroken = this.serverRtc === 'failed' || this.serverRtc === 'closed';
    if (st === 'connected' && !serverBroken) return;
    const now = Date.now();
    if (this.lostSince === null) this.lostSince = now;
    if (st !== 'connected' && now - this.lostSince > LOST_BANNER_AFTER) banner('rtc', t('audio_lost'), 'error');
    const stuck = (st === 'new' || st === 'connecting') && now - this.lastOfferAt > 10000;
    const broken = st === 'disconnected' || st === 'failed' || st === 'closed' || serverBroken;
    if ((stuck || broken || !pc.remoteDescription) && !this.negotiating && now >= this.nextAttempt
        && this.cti.connected) {
      this.failures++;
      this.nextAttempt = now + Math.min(RESTART_MAX_DELAY, 1000 * 2 ** this.failures);
      this.negotiate(true);
    }
  }

  /** A `phone` or `rtc` event, or hello.phone. */
  handleEvent(ev) {
    if (ev.type === 'rtc') {
      this.serverRtc = ev.state;
      if ((ev.state === 'failed' || ev.state === 'closed') && this.pc) this.nextAttempt = Date.now();
    } else {
      const { type, ...status } = ev;  // eslint-disable-line no-unused-vars
      this.status = { ...this.status, ...status };
      if (status.rtc) this.serverRtc = status.rtc;
    }
    this.onChange();
  }

  /** A `hello` (first connection or reconnection): start the phone, or re-offer if its
   * connection is down. Returns false when the server has no browser phone. */
  onHello(ev) {
    if (!(ev.commands || []).includes('rtc_offer')) {
      this.unsupported = true;
      return false;
    }
    if (ev.phone) this.handleEvent({ type: 'phone', ...ev.phone });
    if (!this.started) this.start().catch((e) => console.error('phone start failed', e));
    else this.reconnected();
    return true;
  }

  /** The WebSocket came back: an offer if the connection is not up. */
  reconnected() {
    if (!this.pc) return;
    if (this.pc.connectionState !== 'connected') this.nextAttempt = Date.now();
  }

  answer() { return this.cti.request('phone_answer'); }
  reject() { return this.cti.request('phone_reject'); }
  hangup() { return this.cti.request('phone_hangup'); }
  dial(number) { return this.cti.request('phone_dial', { number }); }
  resume() { return this.cti.request('phone_resume'); }
  completeTransfer() { return this.cti.request('phone_transfer'); }
  threeway() { return this.cti.request('phone_threeway'); }
  echo(on) { return this.cti.request('echo_test', { on }); }

  /** RMS level of what the server sends, dBFS. */
  remoteLevel() { return analyserLevel(this.remoteAnalyser, this.remoteBuf); }

  /** RMS level of the microphone, dBFS. */
  micLevel() { return analyserLevel(this.micAnalyser, this.micBuf); }

  /** Frequency (Hz) of the strongest FFT bin of the remote audio; null below -60 dBFS. */
  remoteToneHz() {
    const a = this.remoteAnalyser;
    if (!a || this.remoteLevel() < -60) return null;
    const f = this.freqBuf;
    a.getFloatFrequencyData(f);
    let best = 1;
    for (let i = 2; i < f.length - 1; i++) if (f[i] > f[best]) best = i;
    if (!Number.isFinite(f[best])) return null;
    // Parabolic interpolation around the peak (on dB values).
    const l = f[best - 1];
    const c = f[best];
    const r = f[best + 1];
    const denom = l - 2 * c + r;
    const delta = Number.isFinite(denom) && denom !== 0 ? 0.5 * (l - r) / denom : 0;
    return ((best + Math.max(-0.5, Math.min(0.5, delta))) * a.context.sampleRate) / a.fftSize;
  }

  /** Register the window.* hooks the browser tests call. */
  exposeHooks() {
    window.hotlineRemoteLevel = () => this.remoteLevel();
    window.hotlineRemoteToneHz = () => this.remoteToneHz();
    window.hotlinePhoneState = () => this.state;
    window.hotlineRtcState = () => this.rtcState;
    window.hotlineMicLevel = () => this.micLevel();
    window.hotlineRestartIce = () => this.negotiate(true);
  }
}

/** The connection indicator (`[data-testid=rtc-state]`): dot, label, data-state. */
export function renderRtcIndicator(node, phone) {
  const st = phone ? phone.rtcState : 'new';
  node.dataset.state = st;
  const label = node.querySelector('.rtc-label');
  if (label) label.textContent = t(`rtc_${st}`);
  node.title = t('rtc_title', { server: phone && phone.serverRtc ? phone.serverRtc : '—' });
}
