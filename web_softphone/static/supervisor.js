// The supervisor console (served at /supervisor): wallboard, agents, live calls with
// listen / whisper / barge / take over / force disconnect, today's charts, reports and
// recordings with a waveform player. See docs/web.md.

import {
  $, Cti, Phone, api, audioContext, boot, banner, clearBanner, confirmDialog, el,
  everySecond, fmtDateTime, fmtDuration, fmtPct, fmtSec, isoDate, meter,
  onLangChange, query, renderRtcIndicator, setChildren, svg, t, tOr, toast, toastError,
} from './common.js';

const TODAY_REFRESH = 30000;   // ms between GET /api/queues (today's figures)
const MODES = [['listen', 'btn-listen', 'btn_listen'], ['whisper', 'btn-whisper', 'btn_whisper'],
  ['barge', 'btn-barge', 'btn_barge'], ['take_over', 'btn-takeover', 'btn_takeover']];

const S = {
  acct: null,
  commands: new Set(),
  reasons: [],
  agents: new Map(),     // id -> {a, since: ms}
  queues: new Map(),     // name -> {q, at: ms}
  today: new Map(),      // name -> stats (GET /api/queues)
  calls: [],
  callsAt: Date.now(),
  supervising: null,     // {callId, agent, mode}
  rec: { rows: [], next: null, params: null, current: null, buffer: null },
  reportsChecked: false,
};

let cti = null;
let phone = null;

function can(cmd) { return S.commands.has(cmd); }
function stateLabel(s) { return t(`state_${s || 'unknown'}`); }
function reasonLabel(r) { return r ? tOr(`reason_${r}`, r) : ''; }
function mayDownload() { return S.acct && (S.acct.role === 'admin' || S.acct.role === 'supervisor'); }

// -------------------------------------------------------------------------- events

function onEvent(ev) {
  switch (ev.type) {
    case 'hello': onHello(ev); break;
    case 'agent_state': onAgentState(ev); break;
    case 'queue_stats':
      for (const q of ev.queues || []) S.queues.set(q.name, { q, at: Date.now() });
      renderWallboard();
      break;
    case 'call_answered':
    case 'call_ended':
    case 'call_queued':
      refreshCallsSoon();
      if (ev.type === 'call_ended' && S.supervising && S.supervising.callId === ev.call_id && !ev.agent) {
        S.supervising = null;
      }
      break;
    case 'phone':
    case 'rtc':
      if (phone) phone.handleEvent(ev);
      break;
    default: break;
  }
}

function onHello(ev) {
  S.commands = new Set(ev.commands || []);
  S.reasons = ev.reasons || [];
  S.agents = new Map((ev.agents || []).map((a) => [a.id, { a, since: a.since === null ? null : Date.now() - a.since * 1000 }]));
  S.queues = new Map((ev.queues || []).map((q) => [q.name, { q, at: Date.now() }]));
  fillQueueSelects();
  fillAgentSelect();
  buildAgents();
  renderWallboard();
  refreshCalls();
  refreshToday();
  phone.onHello(ev);
  renderPhone();
}

function onAgentState(ev) {
  const entry = S.agents.get(ev.agent);
  if (!entry) {
    refreshAgents();
    return;
  }
  const prev = entry.a.state;
  entry.a = { ...entry.a, state: ev.state, reason: ev.reason, call_id: ev.call_id, queue: ev.queue };
  if (prev !== ev.state || entry.since === null) entry.since = Date.now();
  updateAgentRow(ev.agent);
  renderTiles();
  const talk = new Set(['on_call', 'on_hold']);
  if (talk.has(prev) !== talk.has(ev.state)) refreshCallsSoon();
}

async function refreshAgents() {
  try {
    const r = await api('GET', '/api/agents');
    S.agents = new Map(r.agents.map((a) => [a.id, { a, since: a.since === null ? null : Date.now() - a.since * 1000 }]));
    if (r.reasons) S.reasons = r.reasons;
    buildAgents();
    fillAgentSelect();
  } catch (e) { console.warn('agents', e); }
}

async function refreshToday() {
  try {
    const r = await api('GET', '/api/queues');
    for (const q of r.queues) {
      S.today.set(q.name, q.stats || null);
      if (!S.queues.has(q.name)) S.queues.set(q.name, { q, at: Date.now() });
    }
    renderWallboard();
  } catch (e) { console.warn('queues', e); }
}

// ---------------------------------------------------------------------- wallboard

function renderWallboard() {
  const body = $('#wallboard tbody');
  const names = [...S.queues.keys()];
  // Rows are kept and patched (no flicker, stable for tests).
  const existing = new Map([...body.rows].map((r) => [r.dataset.queue, r]));
  for (const [name, row] of existing) if (!S.queues.has(name)) row.remove();
  for (const name of names) {
    let row = existing.get(name);
    if (!row) {
      row = el('tr', { testid: `queue-row-${name}`, dataset: { queue: name } },
        el('th', { text: name }),
        ...['waiting', 'longest', 'connected', 'agents', 'sl', 'asa', 'abandon', 'offered', 'answered', 'abandoned']
          .map((k) => el('td', { class: 'num', testid: `queue-${k}` })));
      body.append(row);
    }
    const { q, at } = S.queues.get(name);
    const st = S.today.get(name);
    const ag = q.agents || {};
    const total = Object.values(ag).reduce((x, y) => x + y, 0);
    const logged = total - (ag.logged_out || 0);
    const longest = q.waiting ? q.longest_wait + (Date.now() - at) / 1000 : null;
    const cells = row.cells;
    cells[1].textContent = q.waiting;
    cells[1].classList.toggle('alert', q.waiting > 0);
    cells[2].textContent = longest === null ? '—' : fmtDuration(longest);
    cells[2].classList.toggle('alert', longest !== null && longest > 60);
    cells[3].textContent = q.connected ?? '—';
    cells[4].textContent = `${ag.ready || 0} / ${logged}`;
    cells[5].textContent = st ? fmtPct(st.sl) : '—';
    cells[6].textContent = st ? fmtSec(st.asa) : '—';
    cells[7].textContent = st ? fmtPct(st.abandon_rate, 1) : '—';
    cells[8].textContent = st ? st.offered : '—';
    cells[9].textContent = st ? st.answered : '—';
    cells[10].textContent = st ? st.abandoned : '—';
  }
  renderTiles();
}

function renderTiles() {
  let waiting = 0;
  let longest = null;
  for (const { q, at } of S.queues.values()) {
    waiting += q.waiting;
    if (q.waiting) longest = Math.max(longest ?? 0, q.longest_wait + (Date.now() - at) / 1000);
  }
  let ready = 0;
  let talking = 0;
  for (const { a } of S.agents.values()) {
    if (a.state === 'ready') ready++;
    if (a.state === 'on_call' || a.state === 'on_hold') talking++;
  }
  let offered = 0;
  let slWeighted = 0;
  let slWeight = 0;
  let abandoned = 0;
  for (const st of S.today.values()) {
    if (!st) continue;
    offered += st.offered || 0;
    abandoned += st.abandoned || 0;
    if (st.sl !== null && st.sl !== undefined) {
      slWeighted += st.sl * (st.offered || 0);
      slWeight += st.offered || 0;
    }
  }
  $('#tile-waiting').textContent = waiting;
  $('#tile-waiting').parentElement.classList.toggle('alert', waiting > 0);
  $('#tile-longest').textContent = longest === null ? '—' : fmtDuration(longest);
  $('#tile-ready').textContent = ready;
  $('#tile-talking').textContent = talking;
  $('#tile-sl').textContent = slWeight ? fmtPct(slWeighted / slWeight) : '—';
  $('#tile-abandon').textContent = S.today.size ? `${abandoned}${offered ? ` · ${fmtPct(abandoned / offered)}` : ''}` : '—';
}

// -------------------------------------------------------------------------- agents

function buildAgents() {
  const body = $('#agents-table tbody');
  const rows = [...S.agents.keys()].sort().map((id) => {
    const row = el('tr', { testid: `agent-row-${id}`, dataset: { agent: id } },
      el('td', { class: 'mono', text: id }),
      el('td', { testid: 'agent-name' }),
      el('td', {}, el('span', { class: 'state-badge small', testid: 'agent-state' })),
      el('td', { testid: 'agent-reason' }),
      el('td', { class: 'num mono', testid: 'agent-time' }),
      el('td', { testid: 'agent-call' }),
      el('td', {}, el('select', { class: 'small', testid: 'agent-action', 'aria-label': t('change_state'), on: { change: (e) => agentAction(id, e.target) } })));
    return row;
  });
  setChildren(body, rows);
  for (const id of S.agents.keys()) updateAgentRow(id);
  renderTiles();
}

function agentOptions(a) {
  const opts = [el('option', { value: '', text: t('change_state') })];
  if (a.state !== 'ready') opts.push(el('option', { value: 'ready', text: t('set_ready') }));
  for (const r of S.reasons) opts.push(el('option', { value: `not_ready:${r}`, text: t('set_not_ready', { r: reasonLabel(r) }) }));
  if (a.state !== 'logged_out') opts.push(el('option', { value: 'logged_out', text: t('set_logged_out') }));
  return opts;
}

function updateAgentRow(id) {
  const entry = S.agents.get(id);
  const row = document.querySelector(`#agents-table tr[data-agent="${CSS.escape(id)}"]`);
  if (!entry || !row) return;
  const a = entry.a;
  row.querySelector('[data-testid=agent-name]').textContent = a.name || id;
  const badge = row.querySelector('[data-testid=agent-state]');
  badge.dataset.state = a.state;
  badge.textContent = stateLabel(a.state);
  row.dataset.state = a.state;
  row.querySelector('[data-testid=agent-reason]').textContent = a.state === 'not_ready' ? reasonLabel(a.reason) : '';
  const call = a.call_id ? S.calls.find((c) => c.id === a.call_id) : null;
  const callCell = row.querySelector('[data-testid=agent-call]');
  callCell.textContent = a.call_id ? [a.queue, call ? call.caller : shortId(a.call_id)].filter(Boolean).join(' · ') : '';
  callCell.title = a.call_id || '';
  const select = row.querySelector('[data-testid=agent-action]');
  if (document.activeElement !== select) setChildren(select, agentOptions(a));
  select.disabled = !can('set_state');
  tickAgentRow(row, entry);
}

function tickAgentRow(row, entry) {
  const cell = row.querySelector('[data-testid=agent-time]');
  if (entry.a.state === 'logged_out' || entry.since === null) cell.textContent = '—';
  else cell.textContent = fmtDuration((Date.now() - entry.since) / 1000);
}

async function agentAction(id, select) {
  const value = select.value;
  select.value = '';
  if (!value) return;
  const entry = S.agents.get(id);
  const body = { agent: id };
  if (value.startsWith('not_ready:')) {
    body.state = entry && entry.a.state === 'logged_out' ? 'login' : 'not_ready';
    body.reason = value.slice('not_ready:'.length);
  } else {
    body.state = value;
  }
  select.disabled = true;
  try {
    const reply = await cti.request('set_state', body);
    if (reply.agent && entry) {
      entry.a = reply.agent;
      if (reply.agent.since !== null) entry.since = Date.now() - reply.agent.since * 1000;
    }
  } catch (e) {
    toastError(e);
  } finally {
    select.disabled = false;
    updateAgentRow(id);
  }
}

function shortId(id) { return id && id.length > 14 ? `${id.slice(0, 12)}…` : id; }

// --------------------------------------------------------------------- live calls

let callsTimer = null;
function refreshCallsSoon() {
  clearTimeout(callsTimer);
  callsTimer = setTimeout(refreshCalls, 300);
}

async function refreshCalls() {
  try {
    const r = await api('GET', '/api/calls');
    S.calls = r.calls || [];
    S.callsAt = Date.now();
    if (S.supervising && !S.calls.some((c) => c.id === S.supervising.callId)) S.supervising = null;
    renderCalls();
    for (const [id, entry] of S.agents) if (entry.a.call_id) updateAgentRow(id);
  } catch (e) {
    if (e.status !== 503) console.warn('calls', e);
    S.calls = [];
    renderCalls();
  }
}

function agentOfCall(c) {
  if (c.agent) return c.agent;
  const leg = (c.legs || []).find((l) => l.agent && !l.monitor && l.answered);
  return leg ? leg.agent : null;
}

function renderCalls() {
  const body = $('#calls-table tbody');
  if (!S.calls.length) {
    setChildren(body, el('tr', { class: 'empty' }, el('td', { colspan: 8, class: 'muted', text: t('no_live_calls') })));
    return;
  }
  setChildren(body, S.calls.map((c) => {
    const agent = agentOfCall(c);
    const monitors = (c.legs || []).filter((l) => l.monitor);
    const held = (c.legs || []).some((l) => l.agent === agent && l.held);
    const mine = S.supervising && S.supervising.callId === c.id;
    const canSup = !!agent && can('supervise');
    const buttons = MODES.map(([mode, testid, label]) => el('button', {
      type: 'button', class: `btn small${mine && S.supervising.mode === mode ? ' active' : ''}`,
      testid, text: t(label), disabled: !canSup,
      on: { click: (e) => supervise(c, agent, mode, e.currentTarget) },
    }));
    buttons.push(el('button', {
      type: 'button', class: 'btn small danger', testid: 'btn-disconnect', text: t('btn_disconnect'),
      disabled: !can('hangup'), on: { click: (e) => disconnect(c, e.currentTarget) },
    }));
    return el('tr', { testid: `call-row-${c.id}`, dataset: { callId: c.id, agent: agent || '' }, class: mine ? 'row-active' : '' },
      el('td', { class: 'mono', text: c.caller || '—' }),
      el('td', { class: 'mono', text: c.called || '—' }),
      el('td', { text: c.queue || c.route || '—' }),
      el('td', { class: 'mono', text: agent ? `${agent}${agentName(agent)}` : '—' }),
      el('td', { testid: 'call-state', text: held ? t('held') : !agent && c.queue && c.state === 'answered' ? t('call_queued') : tOr(`call_${c.state}`, c.state || '') }),
      el('td', { class: 'num mono', testid: 'call-talk', dataset: { base: c.answered_seconds ?? '' } }),
      el('td', { class: 'small-text', text: monitors.map((m) => t('monitored_by', { who: m.agent || '?', mode: tOr(`mode_${m.monitor}`, m.monitor) })).join(', ') }),
      el('td', { class: 'actions' }, buttons));
  }));
  tickCalls();
}

function agentName(id) {
  const e = S.agents.get(id);
  return e && e.a.name && e.a.name !== id ? ` ${e.a.name}` : '';
}

function tickCalls() {
  const extra = (Date.now() - S.callsAt) / 1000;
  for (const cell of document.querySelectorAll('#calls-table [data-testid=call-talk]')) {
    const base = cell.dataset.base;
    cell.textContent = base === '' ? '—' : fmtDuration(Number(base) + extra);
  }
}

async function supervise(call, agent, mode, button) {
  button.disabled = true;
  audioContext();
  try {
    await cti.request('supervise', { call_id: call.id, agent, phone: S.acct.user, mode });
    S.supervising = { callId: call.id, agent, mode };
    toast(t('supervise_requested', { mode: t(`btn_${mode === 'take_over' ? 'takeover' : mode}`), a: agent }));
  } catch (e) {
    toastError(e);
  } finally {
    button.disabled = false;
    refreshCallsSoon();
  }
}

async function disconnect(call, button) {
  const ok = await confirmDialog(t('confirm_disconnect', { c: call.caller || call.id }));
  if (!ok) return;
  button.disabled = true;
  try {
    await cti.request('hangup', { call_id: call.id });
  } catch (e) {
    toastError(e);
    button.disabled = false;
  }
  refreshCallsSoon();
}

// -------------------------------------------------------------------------- phone

function renderPhone() {
  const st = phone && !phone.unsupported ? phone.state : 'off';
  const badge = $('#phone-state');
  badge.dataset.state = st;
  const s = phone ? phone.status : {};
  badge.textContent = s.monitor && st === 'talking' ? t('supervising') : t(`phone_${st}`);
  $('#phone-peer').textContent = st !== 'idle' && st !== 'off' ? (s.monitor || s.display || s.peer || '') : '';
  renderRtcIndicator($('#rtc-indicator'), phone);
  const ringing = st === 'ringing' && !s.monitor;
  $('#btn-answer').hidden = !ringing;
  $('#btn-reject').hidden = !ringing;
  const hang = $('#btn-hangup');
  hang.hidden = st !== 'talking' && st !== 'dialing';
  hang.textContent = s.monitor ? t('btn_leave') : t('btn_hangup');
  const echo = $('#btn-echo');
  const on = !!s.echo;
  echo.dataset.state = on ? 'on' : 'off';
  echo.textContent = on ? t('btn_echo_off') : t('btn_echo_on');
  echo.classList.toggle('active', on);
  echo.disabled = !phone || phone.unsupported || !can('echo_test') || (st !== 'idle' && !on);
  echo.title = t('echo_hint');
  if (st === 'idle' && S.supervising) {
    S.supervising = null;
    renderCalls();
  }
}

async function phoneCmd(button, fn) {
  button.disabled = true;
  try {
    const reply = await fn();
    if (reply && reply.phone) phone.handleEvent({ type: 'phone', ...reply.phone });
  } catch (e) {
    toastError(e);
  } finally {
    button.disabled = false;
    renderPhone();
  }
}

// ------------------------------------------------------------------------- charts

function fillQueueSelects() {
  const names = [...S.queues.keys()];
  for (const [id, allLabel] of [['#chart-queue', 'filter_all_queues'], ['#report-queue', 'filter_all_queues'], ['#rec-queue', 'rec_any']]) {
    const sel = $(id);
    const value = sel.value;
    setChildren(sel, el('option', { value: '', text: t(allLabel) }), names.map((n) => el('option', { value: n, text: n })));
    if (names.includes(value)) sel.value = value;
  }
}

function fillAgentSelect() {
  const sel = $('#rec-agent');
  const value = sel.value;
  const ids = [...S.agents.keys()].sort();
  setChildren(sel, el('option', { value: '', text: t('rec_any') }),
    ids.map((id) => el('option', { value: id, text: `${id}${agentName(id)}` })));
  if (ids.includes(value)) sel.value = value;
}

function reportUrl(params, csv) {
  return `/api/reports${query({ ...params, format: csv ? 'csv' : undefined })}`;
}

async function fetchReport(params) {
  try {
    const r = await api('GET', reportUrl(params, false));
    return Array.isArray(r && r.rows) ? r.rows : [];
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
}

function num(x) { return Number.isFinite(x) ? x : 0; }
/** The service level ratio of a report row (`sl`; `service_level` there is the
 * threshold in seconds, so it is used only as a 0..1 fallback). */
function slOf(row) {
  let v = row.sl;
  if (v === undefined && Number.isFinite(row.service_level) && row.service_level <= 1) v = row.service_level;
  return Number.isFinite(v) ? v : null;
}

/** Rows summed by interval_start (offered-weighted SL/ASA when several queues). */
function byInterval(rows) {
  const map = new Map();
  for (const r of rows) {
    const key = r.interval_start || r.start || '';
    let b = map.get(key);
    if (!b) {
      b = { start: key, offered: 0, answered: 0, abandoned: 0, slW: 0, slN: 0 };
      map.set(key, b);
    }
    b.offered += num(r.offered);
    b.answered += num(r.answered);
    b.abandoned += num(r.abandoned);
    const sl = slOf(r);
    if (sl !== null) {
      const w = Math.max(1, num(r.answered) + num(r.abandoned), num(r.offered));
      b.slW += sl * w;
      b.slN += w;
    }
  }
  return [...map.values()].sort((a, b) => String(a.start).localeCompare(String(b.start)))
    .map((b) => ({ ...b, sl: b.slN ? b.slW / b.slN : null }));
}

function intervalLabel(iso, interval) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, '0');
  if (interval === 'day') return `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

const CW = 560;
const CH = 170;
const PAD = { l: 34, r: 8, t: 10, b: 22 };

function chartFrame(yMax, yFmt) {
  const g = svg('g', { class: 'axis' });
  const h = CH - PAD.t - PAD.b;
  for (let i = 0; i <= 4; i++) {
    const y = PAD.t + h - (h * i) / 4;
    g.append(svg('line', { x1: PAD.l, x2: CW - PAD.r, y1: y, y2: y, class: 'grid' }));
    g.append(svg('text', { x: PAD.l - 4, y: y + 3, 'text-anchor': 'end', class: 'tick', text: yFmt((yMax * i) / 4) }));
  }
  return g;
}

function xLabels(buckets, interval, slotW) {
  const g = svg('g', { class: 'axis' });
  const every = Math.max(1, Math.ceil(buckets.length / 12));
  buckets.forEach((b, i) => {
    if (i % every) return;
    g.append(svg('text', { x: PAD.l + slotW * (i + 0.5), y: CH - 6, 'text-anchor': 'middle', class: 'tick', text: intervalLabel(b.start, interval) }));
  });
  return g;
}

function drawSlChart(node, buckets, interval) {
  if (!buckets.length) return setChildren(node, el('div', { class: 'chart-empty muted', text: t('no_data') }));
  const w = CW - PAD.l - PAD.r;
  const h = CH - PAD.t - PAD.b;
  const slotW = w / buckets.length;
  const s = svg('svg', { viewBox: `0 0 ${CW} ${CH}`, class: 'chart-svg', role: 'img', 'aria-label': t('sl_chart') });
  s.append(chartFrame(1, (v) => `${Math.round(v * 100)}%`));
  const pts = [];
  buckets.forEach((b, i) => {
    if (b.sl === null) return;
    const x = PAD.l + slotW * (i + 0.5);
    const y = PAD.t + h * (1 - Math.max(0, Math.min(1, b.sl)));
    pts.push([x, y, b]);
  });
  if (pts.length > 1) s.append(svg('polyline', { points: pts.map(([x, y]) => `${x},${y}`).join(' '), class: 'line-sl' }));
  for (const [x, y, b] of pts) {
    s.append(svg('circle', { cx: x, cy: y, r: 3, class: 'dot-sl' },
      svg('title', { text: `${intervalLabel(b.start, interval)} ${fmtPct(b.sl)}` })));
  }
  s.append(xLabels(buckets, interval, slotW));
  setChildren(node, s);
}

function drawVolumeChart(node, buckets, interval) {
  if (!buckets.length) return setChildren(node, el('div', { class: 'chart-empty muted', text: t('no_data') }));
  const w = CW - PAD.l - PAD.r;
  const h = CH - PAD.t - PAD.b;
  const slotW = w / buckets.length;
  const max = Math.max(1, ...buckets.map((b) => Math.max(b.offered, b.answered + b.abandoned)));
  const yMax = niceMax(max);
  const s = svg('svg', { viewBox: `0 0 ${CW} ${CH}`, class: 'chart-svg', role: 'img', 'aria-label': t('volume_chart') });
  s.append(chartFrame(yMax, (v) => String(Math.round(v))));
  const barW = Math.max(2, slotW * 0.7);
  buckets.forEach((b, i) => {
    const x = PAD.l + slotW * i + (slotW - barW) / 2;
    const other = Math.max(0, b.offered - b.answered - b.abandoned);
    let y = PAD.t + h;
    for (const [value, cls] of [[b.answered, 'bar-answered'], [b.abandoned, 'bar-abandoned'], [other, 'bar-other']]) {
      if (!value) continue;
      const bh = (h * value) / yMax;
      y -= bh;
      s.append(svg('rect', { x, y, width: barW, height: bh, class: cls },
        svg('title', { text: `${intervalLabel(b.start, interval)}: ${b.offered} / ${b.answered} / ${b.abandoned}` })));
    }
  });
  s.append(xLabels(buckets, interval, slotW));
  const legend = el('div', { class: 'legend' },
    el('span', { class: 'lg lg-answered', text: t('legend_answered') }),
    el('span', { class: 'lg lg-abandoned', text: t('legend_abandoned') }),
    el('span', { class: 'lg lg-other', text: t('legend_other') }));
  setChildren(node, s, legend);
}

function niceMax(x) {
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= x) return Math.max(4, m * p);
  return x;
}

async function loadCharts() {
  const date = $('#chart-date').value || isoDate();
  const interval = $('#chart-interval').value;
  const queue = $('#chart-queue').value;
  const params = { interval, date };
  $('#chart-csv').href = reportUrl(params, true);
  let rows;
  try {
    rows = await fetchReport(params);
  } catch (e) {
    rows = null;
    console.warn('reports', e);
  }
  if (rows && queue) rows = rows.filter((r) => !r.queue || r.queue === queue);
  const buckets = rows ? byInterval(rows) : [];
  drawSlChart($('#sl-chart'), buckets, interval);
  drawVolumeChart($('#volume-chart'), buckets, interval);
}

// ------------------------------------------------------------------------ reports

function reportParams() {
  const from = $('#report-from').value || isoDate();
  const to = $('#report-to').value || from;
  const interval = $('#report-range-interval').value;
  if (from === to) return { interval, date: from };
  const until = new Date(`${to}T00:00:00`);
  until.setDate(until.getDate() + 1);
  return { interval, since: from, until: isoDate(until) };
}

async function loadReport(e) {
  if (e) e.preventDefault();
  const params = reportParams();
  $('#report-csv').href = reportUrl(params, true);
  const body = $('#report-table tbody');
  let rows;
  try {
    rows = await fetchReport(params);
  } catch (err) {
    setChildren(body, el('tr', {}, el('td', { colspan: 9, class: 'muted', text: t('err_prefix', { msg: err.message }) })));
    return;
  }
  const queue = $('#report-queue').value;
  if (rows && queue) rows = rows.filter((r) => !r.queue || r.queue === queue);
  if (!rows || !rows.length) {
    setChildren(body, el('tr', { class: 'empty' }, el('td', { colspan: 9, class: 'muted', text: t('no_data') })));
    return;
  }
  const total = { offered: 0, answered: 0, abandoned: 0 };
  const out = rows.map((r) => {
    total.offered += num(r.offered);
    total.answered += num(r.answered);
    total.abandoned += num(r.abandoned);
    const start = r.interval_start || r.start;
    const label = params.interval === 'day' ? String(fmtDateTime(start)).slice(0, 10) : fmtDateTime(start).slice(0, 16);
    return el('tr', { testid: 'report-row' },
      el('td', { class: 'mono', text: label }),
      el('td', { text: r.queue || '—' }),
      el('td', { class: 'num', text: num(r.offered) }),
      el('td', { class: 'num', text: num(r.answered) }),
      el('td', { class: 'num', text: num(r.abandoned) }),
      el('td', { class: 'num', text: fmtPct(slOf(r)) }),
      el('td', { class: 'num', text: fmtSec(r.asa) }),
      el('td', { class: 'num', text: fmtPct(r.abandon_rate ?? (num(r.offered) ? num(r.abandoned) / num(r.offered) : null), 1) }),
      el('td', { class: 'num', text: fmtSec(r.aht) }));
  });
  out.push(el('tr', { class: 'total-row', testid: 'report-total' },
    el('th', { text: t('totals') }), el('td'),
    el('td', { class: 'num', text: total.offered }),
    el('td', { class: 'num', text: total.answered }),
    el('td', { class: 'num', text: total.abandoned }),
    el('td'), el('td'),
    el('td', { class: 'num', text: fmtPct(total.offered ? total.abandoned / total.offered : null, 1) }),
    el('td')));
  setChildren(body, out);
}

// --------------------------------------------------------------------- recordings

function recParams() {
  const since = $('#rec-since').value;
  const untilDay = $('#rec-until').value;
  let until;
  if (untilDay) {
    const d = new Date(`${untilDay}T00:00:00`);
    d.setDate(d.getDate() + 1);
    until = isoDate(d);
  }
  return {
    since: since || undefined, until,
    number: $('#rec-number').value.trim() || undefined,
    agent: $('#rec-agent').value || undefined,
    queue: $('#rec-queue').value || undefined,
    limit: 50,
  };
}

async function searchRecordings(e, more) {
  if (e) e.preventDefault();
  const params = more ? { ...S.rec.params, offset: S.rec.next } : recParams();
  const button = $('#rec-search');
  button.disabled = true;
  try {
    const r = await api('GET', `/api/recordings${query(params)}`);
    S.rec.params = params;
    S.rec.rows = more ? S.rec.rows.concat(r.recordings) : r.recordings;
    S.rec.next = r.next_offset;
    renderRecordings();
  } catch (err) {
    toastError(err);
  } finally {
    button.disabled = false;
  }
}

function renderRecordings() {
  const body = $('#rec-results tbody');
  $('#rec-more').hidden = S.rec.next === null || S.rec.next === undefined;
  if (!S.rec.rows.length) {
    setChildren(body, el('tr', { class: 'empty' }, el('td', { colspan: 7, class: 'muted', text: t('no_recordings') })));
    return;
  }
  setChildren(body, S.rec.rows.map((r) => {
    const selected = S.rec.current && S.rec.current.id === r.id;
    const row = el('tr', {
      testid: `rec-row-${r.id}`, dataset: { id: r.id }, tabindex: 0, class: selected ? 'row-active' : '',
      on: {
        click: (e) => { if (e.target.tagName !== 'A') playRecording(r); },
        keydown: (e) => { if (e.key === 'Enter') playRecording(r); },
      },
    },
    el('td', { class: 'mono', text: fmtDateTime(r.start_time) }),
    el('td', { class: 'mono', text: r.caller || '—' }),
    el('td', { class: 'mono', text: r.callee || '—' }),
    el('td', { text: r.queue || '—' }),
    el('td', { text: (r.agents || []).join(', ') }),
    el('td', { class: 'num mono', text: r.seconds === null ? t('live') : fmtDuration(r.seconds) }),
    el('td', {}, mayDownload() && r.audio ? el('a', {
      href: `${r.audio}?download=1`, download: '', class: 'btn ghost small', testid: 'rec-file-download', text: '⤓',
      title: t('rec_download'),
    }) : null));
    return row;
  }));
}

const player = { raf: 0, duration: 0 };

async function playRecording(r) {
  if (!r.audio) return;
  S.rec.current = r;
  S.rec.buffer = null;
  renderRecordings();
  const audio = $('#rec-audio');
  audio.pause();
  audio.src = r.audio;
  player.duration = r.seconds || 0;
  $('#rec-title').removeAttribute('data-i18n');
  $('#rec-title').textContent = `${r.caller || '?'} → ${r.callee || '?'}`;
  $('#rec-sub').textContent = [fmtDateTime(r.start_time), r.queue, (r.agents || []).join(', ')].filter(Boolean).join(' · ');
  const dl = $('#rec-download');
  dl.hidden = !mayDownload();
  dl.href = `${r.audio}?download=1`;
  $('#rec-play').disabled = false;
  $('#wave-msg').textContent = t('rec_loading');
  const canvas = $('#rec-waveform');
  clearCanvas(canvas);
  drawPlayhead();
  audio.play().catch(() => {});
  try {
    const resp = await fetch(r.audio, { credentials: 'same-origin' });
    if (!resp.ok) {
      let msg = `HTTP ${resp.status}`;
      try { msg = (await resp.json()).error || msg; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    const data = await resp.arrayBuffer();
    if (S.rec.current !== r) return;
    const buffer = await audioContext().decodeAudioData(data);
    if (S.rec.current !== r) return;
    S.rec.buffer = buffer;
    player.duration = buffer.duration;
    $('#wave-msg').textContent = '';
    $('#rec-channels').hidden = buffer.numberOfChannels < 2;
    drawWaveform(canvas, buffer);
  } catch (e) {
    if (S.rec.current === r) $('#wave-msg').textContent = e instanceof DOMException ? t('rec_decode_failed') : t('err_prefix', { msg: e.message });
  }
}

function clearCanvas(canvas) {
  const wrap = $('#wave-wrap');
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.max(100, Math.floor(wrap.clientWidth * dpr));
  canvas.height = Math.floor(140 * dpr);
  const ctx = canvas.getContext('2d');
  ctx.clearRect(0, 0, canvas.width, canvas.height);
}

function drawWaveform(canvas, buffer) {
  clearCanvas(canvas);
  const ctx = canvas.getContext('2d');
  const W = canvas.width;
  const H = canvas.height;
  const lanes = Math.min(2, buffer.numberOfChannels);
  const laneH = H / lanes;
  const colors = ['#2f6fb3', '#1f8a70'];
  for (let ch = 0; ch < lanes; ch++) {
    const data = buffer.getChannelData(ch);
    const per = data.length / W;
    const mid = laneH * ch + laneH / 2;
    const half = laneH / 2 - 2;
    ctx.fillStyle = colors[ch];
    for (let x = 0; x < W; x++) {
      const from = Math.floor(x * per);
      const to = Math.min(data.length, Math.max(from + 1, Math.floor((x + 1) * per)));
      let min = 1;
      let max = -1;
      for (let i = from; i < to; i++) {
        const v = data[i];
        if (v < min) min = v;
        if (v > max) max = v;
      }
      if (max < min) continue;
      const y1 = mid - max * half;
      const y2 = mid - min * half;
      ctx.fillRect(x, y1, 1, Math.max(1, y2 - y1));
    }
    if (ch > 0) {
      ctx.fillStyle = '#d5dbe3';
      ctx.fillRect(0, laneH * ch, W, 1);
    }
  }
  canvas.dataset.channels = String(lanes);
  canvas.dataset.duration = buffer.duration.toFixed(2);
}

function currentDuration() {
  const audio = $('#rec-audio');
  if (player.duration) return player.duration;
  return Number.isFinite(audio.duration) ? audio.duration : 0;
}

function drawPlayhead() {
  const audio = $('#rec-audio');
  const d = currentDuration();
  const frac = d ? Math.min(1, audio.currentTime / d) : 0;
  $('#rec-playhead').style.left = `${(frac * 100).toFixed(3)}%`;
  $('#rec-time').textContent = `${fmtDuration(audio.currentTime)} / ${fmtDuration(d)}`;
  const play = $('#rec-play');
  play.textContent = audio.paused ? t('rec_play') : t('rec_pause');
  play.dataset.state = audio.paused ? 'paused' : 'playing';
}

function playheadLoop() {
  drawPlayhead();
  const audio = $('#rec-audio');
  player.raf = audio.paused ? 0 : requestAnimationFrame(playheadLoop);
}

function wirePlayer() {
  const audio = $('#rec-audio');
  audio.addEventListener('play', () => { if (!player.raf) player.raf = requestAnimationFrame(playheadLoop); });
  for (const ev of ['pause', 'ended', 'seeked', 'loadedmetadata', 'timeupdate']) audio.addEventListener(ev, drawPlayhead);
  $('#rec-play').addEventListener('click', () => {
    audioContext();
    if (audio.paused) audio.play().catch(toastError);
    else audio.pause();
  });
  const wrap = $('#wave-wrap');
  wrap.addEventListener('click', (e) => {
    const d = currentDuration();
    if (!d || !S.rec.current) return;
    const rect = wrap.getBoundingClientRect();
    const frac = Math.max(0, Math.min(1, (e.clientX - rect.left) / rect.width));
    audio.currentTime = frac * d;
    drawPlayhead();
  });
  window.addEventListener('resize', () => {
    if (S.rec.buffer) drawWaveform($('#rec-waveform'), S.rec.buffer);
  });
}

// ---------------------------------------------------------------------------- tabs

function showTab(name) {
  for (const b of document.querySelectorAll('.tab')) {
    b.classList.toggle('active', b.dataset.tab === name);
    b.setAttribute('aria-selected', b.dataset.tab === name ? 'true' : 'false');
  }
  for (const p of document.querySelectorAll('.tab-panel')) p.hidden = p.dataset.panel !== name;
  if (name === 'reports' && !S.reportsChecked) {
    S.reportsChecked = true;
    loadReport();
  }
  if (name === 'recordings' && S.rec.params === null) searchRecordings();
  if (name === 'recordings' && S.rec.buffer) drawWaveform($('#rec-waveform'), S.rec.buffer);
  try { history.replaceState(null, '', `#${name}`); } catch (e) { /* ignore */ }
}

// ---------------------------------------------------------------------------- start

function wire() {
  for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => showTab(b.dataset.tab));
  $('#chart-date').value = isoDate();
  $('#report-from').value = isoDate();
  $('#report-to').value = isoDate();
  $('#rec-since').value = isoDate();
  for (const id of ['#chart-date', '#chart-interval', '#chart-queue']) $(id).addEventListener('change', loadCharts);
  $('#report-form').addEventListener('submit', loadReport);
  $('#rec-form').addEventListener('submit', (e) => searchRecordings(e, false));
  $('#rec-more').addEventListener('click', () => searchRecordings(null, true));
  $('#btn-answer').addEventListener('click', (e) => phoneCmd(e.currentTarget, () => phone.answer()));
  $('#btn-reject').addEventListener('click', (e) => phoneCmd(e.currentTarget, () => phone.reject()));
  $('#btn-hangup').addEventListener('click', (e) => phoneCmd(e.currentTarget, () => phone.hangup()));
  $('#btn-echo').addEventListener('click', (e) => {
    audioContext();
    phoneCmd(e.currentTarget, () => phone.echo(!phone.status.echo));
  });
  wirePlayer();
  onLangChange(() => {
    fillQueueSelects();
    fillAgentSelect();
    buildAgents();
    renderWallboard();
    renderCalls();
    renderPhone();
    renderRecordings();
    loadCharts();
    drawPlayhead();
  });
  everySecond(() => {
    renderWallboard();
    for (const [id, entry] of S.agents) {
      const row = document.querySelector(`#agents-table tr[data-agent="${CSS.escape(id)}"]`);
      if (row) tickAgentRow(row, entry);
    }
    tickCalls();
  });
}

async function main() {
  wire();
  const acct = await boot();
  S.acct = acct;
  $('#user-name').textContent = acct.name && acct.name !== acct.user ? `${acct.name} (${acct.user})` : acct.user;
  if (acct.role !== 'supervisor' && acct.role !== 'admin') {
    $('#wrong-role').hidden = false;
    return;
  }
  $('#app').hidden = false;
  cti = new Cti({ onEvent, onOpen: () => clearBanner('ws') });
  phone = new Phone(cti, { onChange: renderPhone });
  phone.exposeHooks();
  window.hotlineSupervising = () => S.supervising;
  window.hotline = { cti, phone, state: S };  // for debugging from the console
  meter($('#mic-meter'), () => phone.micLevel());
  meter($('#spk-meter'), () => phone.remoteLevel());
  renderPhone();
  renderRecordings();
  const tab = location.hash.replace('#', '');
  showTab(['monitor', 'reports', 'recordings'].includes(tab) ? tab : 'monitor');
  cti.connect();
  loadCharts();
  setInterval(refreshToday, TODAY_REFRESH);
  setInterval(loadCharts, 60000);
}

main().catch((e) => {
  console.error(e);
  banner('fatal', String(e), 'error');
});
