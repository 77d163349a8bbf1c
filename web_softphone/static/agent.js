// The agent desktop (served at /): state bar, browser phone, screen pop, call controls,
// wrap-up and call log. Everything goes over the CTI WebSocket /api/ws except the
// session, the wrap-up save and the call log (REST). See docs/web.md.

import {
  $, Cti, Phone, RingTone, api, audioContext, boot, clearBanner, banner, dtmfBeep, el,
  everySecond, fmtDuration, fmtTime, isoDate, meter, onLangChange, query,
  renderRtcIndicator, setChildren, t, tOr, toast, toastError,
} from './common.js';

/** Agent states in which a call is going on (next_state applies after it). */
const BUSY = new Set(['ringing', 'on_call', 'on_hold', 'wrapup']);
const KEYS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#'];
const EXTEND_WRAPUP = 30;

const S = {
  acct: null,
  me: null,              // agent id, or null for a login without an extension
  commands: new Set(),
  reasons: [],
  dispositions: [],
  agent: null,           // the agent as agent_json() shows it
  stateSince: Date.now(),
  wrapupUntil: null,     // ms, while in wrap-up
  queues: new Map(),     // name -> {q: queue_stats entry, at: ms}
  offer: null,           // the pending call_offered
  contact: null,         // what the screen pop shows
  contactVersion: 0,
  call: null,            // {callId, startedAt, held, muted, peer, direction}
  wrapup: null,          // {callId, who, queue}
  wrapupDone: new Set(),
  finished: new Set(),
  log: new Map(),        // callId -> row
  phonePrev: 'idle',
  endedTalkTime: null,   // talk_time of a call_ended that came while the phone still talked
  helloCount: 0,
};

const ring = new RingTone();
let cti = null;
let phone = null;

// ------------------------------------------------------------------------ helpers

function stateLabel(state) { return t(`state_${state || 'unknown'}`); }
function reasonLabel(r) { return r ? tOr(`reason_${r}`, r) : ''; }
function dispLabel(d) { return d ? tOr(`disp_${d}`, d) : ''; }
function can(cmd) { return S.commands.has(cmd); }
function phoneReady() { return !!phone && !phone.unsupported; }

async function run(button, fn) {
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    toastError(e);
    return null;
  } finally {
    if (button) button.disabled = false;
    renderAll();
  }
}

function setAgent(agent) {
  if (!agent) return;
  const changed = !S.agent || S.agent.state !== agent.state;
  S.agent = agent;
  if (agent.since !== null && agent.since !== undefined) S.stateSince = Date.now() - agent.since * 1000;
  else if (changed) S.stateSince = Date.now();
  S.wrapupUntil = agent.state === 'wrapup' && agent.wrapup_left !== null
    ? Date.now() + agent.wrapup_left * 1000 : null;
}

async function refreshAgent() {
  if (!S.me) return;
  try {
    setAgent(await api('GET', `/api/agents/${encodeURIComponent(S.me)}`));
    renderState();
  } catch (e) { /* the next event corrects it */ }
}

// ------------------------------------------------------------------------- events

function onEvent(ev) {
  switch (ev.type) {
    case 'hello': onHello(ev); break;
    case 'agent_state': onAgentState(ev); break;
    case 'call_offered': onOffered(ev); break;
    case 'offer_withdrawn': onWithdrawn(ev); break;
    case 'call_answered': onAnswered(ev); break;
    case 'call_ended': onEnded(ev); break;
    case 'queue_stats':
      for (const q of ev.queues || []) S.queues.set(q.name, { q, at: Date.now() });
      renderQueues();
      break;
    case 'phone':
    case 'rtc':
      if (phone) phone.handleEvent(ev);
      break;
    default: break;
  }
}

function onHello(ev) {
  S.helloCount++;
  S.commands = new Set(ev.commands || []);
  S.reasons = ev.reasons || [];
  S.dispositions = Array.isArray(ev.dispositions) ? ev.dispositions : [];
  S.queues = new Map((ev.queues || []).map((q) => [q.name, { q, at: Date.now() }]));
  const mine = (ev.agents || []).find((a) => a.id === S.me);
  if (mine) setAgent(mine);
  fillReasons();
  fillWrapupCode();
  if (mine && (mine.state === 'on_call' || mine.state === 'on_hold') && !S.call) {
    // A reload during a call: pick it up from the agent's state.
    S.call = { callId: mine.call_id, startedAt: S.stateSince, held: mine.state === 'on_hold', muted: false };
    if (!S.contact) setContact({ callId: mine.call_id, caller: '', queue: mine.queue, kind: 'current' });
  }
  if (!phone.onHello(ev)) banner('phone', t('phone_unsupported'), 'info');
  if (S.helloCount === 1) loadCdrs();
  renderAll();
}

function onAgentState(ev) {
  if (ev.agent !== S.me || !S.agent) return;
  const prev = S.agent.state;
  S.agent = { ...S.agent, state: ev.state, reason: ev.reason, call_id: ev.call_id, queue: ev.queue };
  if (!BUSY.has(ev.state)) S.agent.next_state = null;
  if (ev.state !== 'wrapup') S.wrapupUntil = null;
  if (prev !== ev.state) S.stateSince = Date.now();
  if (S.call) {
    if (ev.state === 'on_hold') S.call.held = true;
    if (ev.state === 'on_call') S.call.held = false;
  }
  if (ev.state === 'wrapup' || (BUSY.has(ev.state) && prev !== ev.state)) refreshAgent();
  if (prev === 'ringing' && (ev.state === 'ready' || ev.state === 'not_ready') && S.offer
      && phone.state !== 'ringing') {
    S.offer = null;
    if (S.contact && !S.contact.answeredAt) setContact(null);
  }
  renderAll();
}

function onOffered(ev) {
  if (ev.agent !== S.me) return;
  S.offer = {
    callId: ev.call_id, caller: ev.caller, queue: ev.queue, wait: ev.wait || 0,
    offeredAt: Date.now(), priority: ev.priority, callback: ev.callback,
    variables: ev.variables || {}, history: ev.history, ringTimeout: ev.ring_timeout,
  };
  if (!S.call) setContact({ ...S.offer, kind: 'incoming' });
  renderAll();
}

function onWithdrawn(ev) {
  if (ev.agent !== S.me || !S.offer || S.offer.callId !== ev.call_id) return;
  S.offer = null;
  if (S.contact && S.contact.callId === ev.call_id && !S.contact.answeredAt) {
    setContact(null);
    if (ev.reason === 'answered_elsewhere' || ev.reason === 'caller_left') toast(t('pop_withdrawn'));
  }
  renderAll();
}

function onAnswered(ev) {
  if (ev.agent !== S.me) return;
  if (S.offer && S.offer.callId === ev.call_id) S.offer = null;
  if (S.contact && (!S.contact.callId || S.contact.callId === ev.call_id)) {
    S.contact.answeredAt = S.contact.answeredAt || Date.now();
    S.contact.kind = 'current';
    S.contactVersion++;
  }
  if (!S.call) S.call = { callId: ev.call_id, startedAt: Date.now(), held: false, muted: false };
  renderAll();
}

function onEnded(ev) {
  if (!ev.agent || ev.agent !== S.me) return;
  if (phoneReady() && phone.state === 'talking'
      && (!phone.status.call_id || phone.status.call_id === ev.call_id)) {
    // The browser phone still carries the call (a blind transfer releases the agent's
    // leg only once the target answers): the call ends for the page when it goes idle.
    S.endedTalkTime = ev.talk_time;
    return;
  }
  finishCall(ev.call_id, ev.talk_time);
}

/** The phone's state changed (a `phone` event or the connection). */
function onPhoneChange() {
  const st = phone.state;
  const prev = S.phonePrev;
  const status = phone.status;
  S.phonePrev = st;
  if (st !== prev) {
    if (st === 'ringing') {
      const fromOffer = S.offer && (!status.call_id || S.offer.callId === status.call_id);
      if (status.monitor) {
        setContact({ callId: status.call_id, caller: status.display || status.peer, kind: 'monitor', monitor: status.monitor });
      } else if (!fromOffer && (!S.contact || S.contact.callId !== status.call_id)) {
        setContact({ callId: status.call_id, caller: status.display || status.peer, queue: null, kind: 'direct', offeredAt: Date.now() });
      }
    } else if (st === 'talking' || st === 'dialing') {
      if (!S.call) {
        S.call = { callId: status.call_id, startedAt: Date.now(), held: false, muted: false };
      } else if (!S.call.callId) {
        S.call.callId = status.call_id;
      }
      // The talk timer starts when the other side answers an outgoing call.
      if (st === 'dialing') S.call.dialingSince = Date.now();
      else if (S.call.dialingSince) {
        S.call.startedAt = Date.now();
        S.call.dialingSince = null;
      }
      if (!S.contact) {
        setContact({ callId: status.call_id, caller: status.display || status.peer,
          kind: status.direction === 'out' ? 'outgoing' : 'current' });
      }
      if (S.contact) {
        S.contact.answeredAt = S.contact.answeredAt || Date.now();
        if (S.contact.kind === 'incoming' || S.contact.kind === 'direct') S.contact.kind = 'current';
        S.contactVersion++;
      }
      if (S.offer && (!status.call_id || S.offer.callId === status.call_id)) S.offer = null;
    } else if (st === 'idle') {
      if (prev === 'talking' || prev === 'dialing') {
        const callId = (S.call && S.call.callId) || (S.contact && S.contact.callId) || null;
        // A queue call also ends with call_ended (and its wrap-up); a direct call only here.
        finishCall(callId, S.endedTalkTime ?? null);
        S.endedTalkTime = null;
      } else if (prev === 'ringing') {
        if (S.contact && !S.contact.answeredAt && !S.offer) setContact(null);
      }
    }
  }
  renderAll();
}

function setContact(c) {
  S.contact = c;
  S.contactVersion++;
}

function finishCall(callId, talkTime) {
  const key = callId || `local-${Date.now()}`;
  const c = S.contact;
  const call = S.call;
  if (S.finished.has(key)) return;
  S.finished.add(key);
  const started = call ? call.startedAt : Date.now();
  const row = S.log.get(key) || {};
  S.log.set(key, {
    ...row,
    callId: key,
    time: row.time || new Date(c && c.offeredAt ? c.offeredAt : started).toISOString(),
    dir: c && c.kind === 'outgoing' ? 'out' : 'in',
    number: (c && c.caller) || row.number || '',
    queue: (c && c.queue) || row.queue || '',
    duration: talkTime ?? Math.round((Date.now() - started) / 1000),
    disposition: row.disposition || '',
  });
  S.call = null;
  S.offer = null;
  if (c && c.kind === 'monitor') {
    setContact(null);
  } else {
    if (c) {
      c.ended = true;
      S.contactVersion++;
    }
    if (callId && !S.wrapupDone.has(callId)) {
      S.wrapup = { callId, who: (c && c.caller) || '', queue: (c && c.queue) || '' };
      openWrapup();
    }
  }
  setTimeout(loadCdrs, 2500);
  renderAll();
}

// ------------------------------------------------------------------------ actions

function answer() {
  if (!phoneReady() || phone.state !== 'ringing') return;
  audioContext();
  run($('#btn-answer'), () => phone.answer());
}

function reject() {
  if (!phoneReady() || phone.state !== 'ringing') return;
  run($('#btn-reject'), () => phone.reject());
}

function hangup() {
  if (phoneReady() && phone.state !== 'idle') {
    run($('#btn-hangup'), () => (phone.state === 'ringing' ? phone.reject() : phone.hangup()));
  } else if (S.call && can('hangup')) {
    // On a desk phone: end the call from here.
    run($('#btn-hangup'), () => cti.request('hangup', S.call.callId ? { call_id: S.call.callId } : {}));
  }
}

function legOf(reply) {
  const call = reply && reply.call;
  if (!call || !Array.isArray(call.legs)) return null;
  return call.legs.find((l) => l.agent === S.me && !l.monitor) || null;
}

function toggleHold() {
  if (!S.call) return;
  const cmd = S.call.held ? 'unhold' : 'hold';
  if (!can(cmd)) return;
  run($('#btn-hold'), async () => {
    const reply = await cti.request(cmd);
    const leg = legOf(reply);
    if (S.call) S.call.held = leg ? !!leg.held : cmd === 'hold';
  });
}

function toggleMute() {
  if (!S.call) return;
  const cmd = S.call.muted ? 'unmute' : 'mute';
  if (!can(cmd)) return;
  run($('#btn-mute'), async () => {
    const reply = await cti.request(cmd);
    const leg = legOf(reply);
    if (S.call) S.call.muted = leg ? !!leg.muted : cmd === 'mute';
  });
}

function sendDigit(d) {
  if (!S.call || !can('dtmf')) return;
  dtmfBeep(d);
  cti.request('dtmf', { digits: d }).catch(toastError);
}

function transfer(e) {
  e.preventDefault();
  const input = $('#transfer-number');
  const number = input.value.trim();
  if (!number || !S.call || !can('transfer')) return;
  run($('#btn-transfer'), async () => {
    await cti.request('transfer', { number });
    toast(t('transfer_started', { n: number }));
    const list = $('#transfer-targets');
    if (![...list.options].some((o) => o.value === number)) list.append(el('option', { value: number }));
    input.value = '';
  });
}

function dial(e) {
  e.preventDefault();
  const input = $('#dial-number');
  const number = input.value.trim();
  if (!number || !can('phone_dial') || !phoneReady() || phone.state !== 'idle') return;
  audioContext();
  run($('#btn-dial'), async () => {
    setContact({ callId: null, caller: number, kind: 'outgoing', offeredAt: Date.now() });
    try {
      await phone.dial(number);
      input.value = '';
    } catch (err) {
      if (phone.state === 'idle') setContact(null);
      throw err;
    }
  });
}

function setState(state, reason) {
  if (!S.me) return;
  const body = { state };
  if (reason) body.reason = reason;
  // From logged_out a break needs a login first: "login" with a reason does both.
  if (state === 'not_ready' && S.agent && S.agent.state === 'logged_out') body.state = 'login';
  const button = state === 'ready' ? $('#btn-ready') : state === 'not_ready' ? $('#btn-notready') : $('#btn-queues-logout');
  run(button, async () => {
    const reply = await cti.request('set_state', body);
    setAgent(reply.agent);
  });
}

function extendWrapup() {
  run($('#btn-extend-wrapup'), async () => {
    const reply = await cti.request('wrapup', { extend: EXTEND_WRAPUP });
    setAgent(reply.agent);
  });
}

function toggleEcho() {
  if (!phoneReady()) return;
  audioContext();
  const on = !phone.status.echo;
  run($('#btn-echo'), async () => {
    const reply = await phone.echo(on);
    if (reply && reply.phone) phone.handleEvent({ type: 'phone', ...reply.phone });
    else phone.status.echo = on;
  });
}

// ---------------------------------------------------------------------- wrap-up

function fillWrapupCode() {
  const slot = $('#wrapup-code-slot');
  const prev = $('#wrapup-code');
  const value = prev ? prev.value : '';
  let node;
  if (S.dispositions.length) {
    node = el('select', { id: 'wrapup-code', testid: 'wrapup-code', required: true },
      el('option', { value: '', text: t('choose') }),
      S.dispositions.map((d) => {
        const code = typeof d === 'string' ? d : d.code;
        const label = typeof d === 'string' ? tOr(`disp_${d}`, d) : (d.label || d.code);
        return el('option', { value: code, text: label });
      }));
  } else {
    node = el('input', { id: 'wrapup-code', testid: 'wrapup-code', autocomplete: 'off', maxlength: 64, placeholder: t('disposition_placeholder') });
  }
  node.value = value;
  setChildren(slot, node);
}

function openWrapup() {
  $('#wrapup-error').textContent = '';
  $('#wrapup-notes').value = '';
  const code = $('#wrapup-code');
  if (code) code.value = '';
}

async function saveWrapup(e) {
  e.preventDefault();
  const w = S.wrapup;
  if (!w) return;
  const code = $('#wrapup-code').value.trim();
  const notes = $('#wrapup-notes').value;
  const error = $('#wrapup-error');
  error.textContent = '';
  const button = $('#wrapup-save');
  button.disabled = true;
  try {
    await api('POST', `/api/cdrs/${encodeURIComponent(w.callId)}/wrapup`, { code, notes });
    S.wrapupDone.add(w.callId);
    const row = S.log.get(w.callId);
    if (row) row.code = code;
    S.wrapup = null;
    if (S.contact && S.contact.ended) setContact(null);
    toast(t('saved'));
  } catch (err) {
    error.textContent = t('err_prefix', { msg: err.message });
  } finally {
    button.disabled = false;
    renderAll();
  }
}

function closeWrapup() {
  S.wrapup = null;
  if (S.contact && S.contact.ended) setContact(null);
  renderAll();
}

// ---------------------------------------------------------------------- call log

async function loadCdrs() {
  if (!S.me) return;
  const base = { agent: S.me, since: isoDate(), limit: 100 };
  try {
    let r = await api('GET', `/api/cdrs${query(base)}`);
    if (r.total > r.cdrs.length) {
      r = await api('GET', `/api/cdrs${query({ ...base, offset: Math.max(0, r.total - 100) })}`);
    }
    const byCall = new Map();
    for (const c of r.cdrs) {
      const list = byCall.get(c.call_id) || [];
      list.push(c);
      byCall.set(c.call_id, list);
    }
    for (const [callId, legs] of byCall) {
      const main = legs.find((l) => l.leg === 'caller') || legs[0];
      const out = main.caller === S.me;
      const row = S.log.get(callId) || {};
      S.log.set(callId, {
        ...row,
        callId,
        time: main.start_time,
        dir: out ? 'out' : 'in',
        number: out ? main.callee : main.caller,
        queue: main.queue || row.queue || '',
        duration: Math.max(...legs.map((l) => l.billsec || 0)),
        disposition: main.disposition || row.disposition || '',
        code: (legs.find((l) => l.wrapup_code) || {}).wrapup_code || row.code || '',
      });
    }
    renderLog();
  } catch (e) {
    console.warn('cdrs', e);
  }
}

// ------------------------------------------------------------------------ render

function renderAll() {
  renderState();
  renderQueues();
  renderPhone();
  renderMain();
  renderLog();
  updateRing();
}

function fillReasons() {
  const sel = $('#notready-reason');
  const value = sel.value;
  setChildren(sel, S.reasons.map((r) => el('option', { value: r, text: reasonLabel(r) })));
  if (S.reasons.includes(value)) sel.value = value;
}

function renderState() {
  const a = S.agent;
  show($('#state-controls'), !!S.me);
  show($('#no-agent'), !S.me);
  const badge = $('#state');
  const st = a ? a.state : (S.me ? 'logged_out' : 'unknown');
  badge.dataset.state = st;
  badge.textContent = stateLabel(st);
  const sub = [];
  if (a && a.state === 'not_ready' && a.reason) sub.push(reasonLabel(a.reason));
  if (a && a.state === 'wrapup' && S.wrapupUntil) {
    sub.push(t('wrapup_left', { t: fmtDuration((S.wrapupUntil - Date.now()) / 1000) }));
  }
  if (a && a.queue && BUSY.has(a.state)) sub.push(a.queue);
  $('#state-sub').textContent = sub.join(' · ');
  $('#state-time').textContent = a && st !== 'logged_out'
    ? t('in_state_for', { t: fmtDuration((Date.now() - S.stateSince) / 1000) }) : '';
  const next = a && a.next_state && a.next_state !== 'ready'
    ? t('next_state', { state: stateLabel(a.next_state) + (a.next_reason ? ` (${reasonLabel(a.next_reason)})` : '') }) : '';
  $('#state-next').textContent = next;
  $('#btn-ready').disabled = !a || !can('set_state') || (st === 'ready');
  $('#btn-notready').disabled = !a || !can('set_state') || !S.reasons.length;
  $('#btn-queues-logout').disabled = !a || !can('set_state') || st === 'logged_out';
  const extend = $('#btn-extend-wrapup');
  extend.hidden = st !== 'wrapup';
  extend.disabled = !can('wrapup');
}

function renderQueues() {
  const list = $('#my-queues');
  const mine = S.agent ? new Set(S.agent.queues || []) : null;
  const rows = [];
  for (const { q, at } of S.queues.values()) {
    if (mine && mine.size && !mine.has(q.name)) continue;
    const longest = q.waiting ? q.longest_wait + (Date.now() - at) / 1000 : 0;
    rows.push(el('li', { class: `queue-item${q.waiting ? ' has-waiting' : ''}`, testid: `queue-waiting-${q.name}`, dataset: { waiting: q.waiting } },
      el('span', { class: 'queue-name', text: q.name }),
      el('span', { class: 'queue-count', text: t('waiting_n', { n: q.waiting }) }),
      q.waiting ? el('span', { class: 'queue-longest muted', text: t('longest_wait', { t: fmtDuration(longest) }) }) : null));
  }
  if (!rows.length) rows.push(el('li', { class: 'muted', text: t('no_queues') }));
  setChildren(list, rows);
}

function renderPhone() {
  const badge = $('#phone-state');
  const st = phoneReady() ? phone.state : 'off';
  badge.dataset.state = st;
  badge.textContent = t(`phone_${st}`);
  const s = phone ? phone.status : {};
  $('#phone-peer').textContent = st !== 'idle' && st !== 'off' ? (s.display || s.peer || '') : '';
  renderRtcIndicator($('#rtc-indicator'), phone);
  const echo = $('#btn-echo');
  const echoOn = !!(phone && phone.status.echo);
  echo.dataset.state = echoOn ? 'on' : 'off';
  echo.textContent = echoOn ? t('btn_echo_off') : t('btn_echo_on');
  echo.classList.toggle('active', echoOn);
  echo.disabled = !phoneReady() || !can('echo_test') || (st !== 'idle' && !echoOn);
  echo.title = st !== 'idle' ? t('echo_busy') : t('echo_hint');
  const dialOk = can('phone_dial') && phoneReady() && st === 'idle';
  $('#btn-dial').disabled = !dialOk;
  $('#dial-number').disabled = !can('phone_dial');
  $('#btn-dial').title = can('phone_dial') ? '' : t('unavailable_cmd');
}

let shownVersion = -1;

function renderMain() {
  const c = S.contact;
  const inCall = !!S.call;
  show($('#screen-pop'), !!c);
  show($('#call-panel'), inCall);
  show($('#wrapup-panel'), !!S.wrapup);
  show($('#idle-panel'), !c && !inCall && !S.wrapup);
  const st = S.agent ? S.agent.state : 'logged_out';
  const hints = { ready: 'waiting_hint_ready', not_ready: 'waiting_hint_notready', logged_out: 'waiting_hint_logged_out' };
  $('#idle-hint').textContent = hints[st] ? t(hints[st]) : '';
  if (c) renderPop(c);
  if (inCall) renderCall();
  if (S.wrapup) $('#wrapup-for').textContent = t('wrapup_for', { n: S.wrapup.who || S.wrapup.callId });
}

function renderPop(c) {
  const ringing = phoneReady() && phone.state === 'ringing';
  const offered = !!S.offer && !S.call;
  const pop = $('#screen-pop');
  pop.dataset.ringing = ringing || offered ? 'true' : 'false';
  pop.dataset.callId = c.callId || '';
  const kind = c.kind === 'monitor' ? t('supervision_call', { mode: c.monitor || '' })
    : c.ended ? t('wrapup_for', { n: c.caller || '' })
      : c.kind === 'outgoing' ? t('outgoing_call')
        : c.kind === 'current' ? t('current_call')
          : c.kind === 'direct' ? `${t('incoming_call')} · ${t('direct_call')}` : t('incoming_call');
  $('#pop-kind').textContent = kind;
  $('#pop-caller').textContent = c.caller || '—';
  $('#pop-queue').textContent = c.queue || '—';
  const waited = c.wait !== undefined && c.offeredAt
    ? c.wait + ((c.answeredAt || (c.ended ? c.offeredAt : Date.now())) - c.offeredAt) / 1000 : null;
  $('#pop-wait').textContent = fmtDuration(waited);
  $('#pop-priority-box').hidden = !c.priority;
  $('#pop-priority').textContent = c.priority || '';
  $('#pop-callback-box').hidden = !c.callback;
  $('#pop-callback').textContent = c.callback || '';
  const actions = $('#pop-actions');
  actions.hidden = !(ringing || offered) || c.kind === 'monitor';
  $('#btn-answer').disabled = !ringing || !phoneReady();
  $('#btn-reject').disabled = !ringing || !phoneReady();
  if (shownVersion === S.contactVersion) return;
  shownVersion = S.contactVersion;
  // variables and history: rebuilt only when the contact changes
  const vars = Object.entries(c.variables || {});
  setChildren($('#pop-variables tbody'), vars.length
    ? vars.map(([k, v]) => el('tr', { testid: `pop-var-${k}` }, el('th', { text: tOr(`var_${k}`, k), title: k }), el('td', { text: typeof v === 'string' ? v : JSON.stringify(v) })))
    : el('tr', {}, el('td', { class: 'muted', colspan: 2, text: t('no_variables') })));
  const hist = $('#pop-history');
  if (c.history === null) {
    setChildren(hist, el('li', { class: 'muted', text: t('history_unavailable') }));
  } else if (!c.history || !c.history.length) {
    setChildren(hist, el('li', { class: 'muted', text: t('no_history') }));
  } else {
    setChildren(hist, c.history.map((h) => el('li', { class: 'history-item', testid: 'pop-history-item' },
      el('span', { class: 'history-time', text: fmtTime(h.time) }),
      el('span', { class: 'history-main', text: [h.queue, h.agent, dispLabel(h.disposition)].filter(Boolean).join(' · ') }),
      el('span', { class: 'history-dur', text: fmtDuration(h.billsec) }),
      h.recording_id ? el('a', {
        class: 'history-rec', href: `/api/recordings/${encodeURIComponent(h.recording_id)}/audio`,
        target: '_blank', rel: 'noopener', testid: 'pop-history-recording', text: `▶ ${t('play')}`,
      }) : null)));
  }
}

function renderCall() {
  const call = S.call;
  const dialing = phoneReady() && phone.state === 'dialing';
  const status = dialing ? t('dialing') : call.held ? t('held') : t('talking');
  const node = $('#call-status');
  node.textContent = status + (call.muted ? ` · ${t('muted')}` : '');
  node.dataset.state = dialing ? 'dialing' : call.held ? 'held' : 'talking';
  $('#call-peer').textContent = (S.contact && S.contact.caller) || '';
  $('#call-timer').textContent = fmtDuration((Date.now() - call.startedAt) / 1000);
  const hold = $('#btn-hold');
  hold.textContent = call.held ? t('btn_unhold') : t('btn_hold');
  hold.dataset.state = call.held ? 'on' : 'off';
  hold.classList.toggle('active', call.held);
  hold.disabled = dialing || !can(call.held ? 'unhold' : 'hold');
  const mute = $('#btn-mute');
  mute.textContent = call.muted ? t('btn_unmute') : t('btn_mute');
  mute.dataset.state = call.muted ? 'on' : 'off';
  mute.classList.toggle('active', call.muted);
  mute.disabled = dialing || !can(call.muted ? 'unmute' : 'mute');
  $('#btn-hangup').disabled = !(phoneReady() && phone.state !== 'idle') && !can('hangup');
  $('#btn-transfer').disabled = dialing || !can('transfer');
  $('#transfer-number').disabled = !can('transfer');
  for (const b of $('#dtmf-pad').querySelectorAll('button')) b.disabled = dialing || !can('dtmf');
  renderConsult();
}

/** The held call of a consultation, and what can be done with the two calls. */
function renderConsult() {
  const st = (phone && phone.status) || {};
  const held = st.held || null;
  const panel = $('#consult-panel');
  panel.hidden = !held;
  $('#consult-held').textContent = held ? held.peer : '';
  const talking = st.state === 'talking';
  $('#btn-consult').disabled = !can('phone_dial') || !phoneReady() || !talking || !!held;
  $('#btn-consult').title = t('consult_hint');
  $('#btn-complete').disabled = !held || !talking || !can('phone_transfer');
  $('#btn-threeway').disabled = !held || !talking || !can('phone_threeway');
  $('#btn-resume').disabled = !held || st.state !== 'idle' || !can('phone_resume');
}

function consult() {
  const input = $('#transfer-number');
  const number = input.value.trim();
  if (!number || !can('phone_dial')) return;
  run($('#btn-consult'), async () => {
    await phone.dial(number);
    input.value = '';
  });
}

function renderLog() {
  const rows = [...S.log.values()].sort((a, b) => String(b.time).localeCompare(String(a.time)));
  const list = $('#call-log');
  if (!rows.length) {
    setChildren(list, el('li', { class: 'muted empty', text: t('no_calls') }));
    return;
  }
  setChildren(list, rows.slice(0, 50).map((r) => el('li', { class: 'log-row', testid: 'call-log-row', dataset: { callId: r.callId, dir: r.dir } },
    el('div', { class: 'log-line' },
      el('span', { class: `log-dir dir-${r.dir}`, title: t(`dir_${r.dir}`), text: r.dir === 'out' ? '↗' : '↙' }),
      el('span', { class: 'log-number', text: r.number || '—' }),
      el('span', { class: 'log-dur', text: fmtDuration(r.duration) })),
    el('div', { class: 'log-line muted' },
      el('span', { text: fmtTime(r.time) }),
      r.queue ? el('span', { text: r.queue }) : null,
      r.code || r.disposition ? el('span', { class: r.code ? 'log-code' : '', testid: 'call-log-disposition', text: r.code ? tOr(`disp_${r.code}`, r.code) : dispLabel(r.disposition) }) : null))));
}

function updateRing() {
  const phoneRinging = phoneReady() && phone.state === 'ringing' && !phone.status.monitor;
  const offered = !!S.offer && !S.call;
  if (phoneRinging || offered) ring.start();
  else ring.stop();
}

function show(node, visible) { node.hidden = !visible; }

// -------------------------------------------------------------------- keyboard

function onKey(e) {
  const target = e.target;
  const typing = target && (target.tagName === 'INPUT' || target.tagName === 'TEXTAREA'
    || target.tagName === 'SELECT' || target.isContentEditable);
  const fkey = /^F\d+$/.test(e.key);
  if (typing && !fkey) return;
  let handled = true;
  if (e.key === 'F2' || (e.ctrlKey && e.key === 'Enter')) answer();
  else if (e.key === 'F4' || (e.ctrlKey && e.key === 'Backspace')) hangup();
  else if (e.key === 'F6') toggleHold();
  else if (e.key === 'F7') toggleMute();
  else handled = false;
  if (handled) e.preventDefault();
}

// ------------------------------------------------------------------------- start

function wire() {
  $('#btn-ready').addEventListener('click', () => setState('ready'));
  $('#btn-notready').addEventListener('click', () => setState('not_ready', $('#notready-reason').value));
  $('#btn-queues-logout').addEventListener('click', () => setState('logged_out'));
  $('#btn-extend-wrapup').addEventListener('click', extendWrapup);
  $('#btn-answer').addEventListener('click', answer);
  $('#btn-reject').addEventListener('click', reject);
  $('#btn-hangup').addEventListener('click', hangup);
  $('#btn-hold').addEventListener('click', toggleHold);
  $('#btn-mute').addEventListener('click', toggleMute);
  $('#btn-echo').addEventListener('click', toggleEcho);
  $('#dial-form').addEventListener('submit', dial);
  $('#transfer-form').addEventListener('submit', transfer);
  $('#btn-consult').addEventListener('click', consult);
  $('#btn-complete').addEventListener('click', () => run($('#btn-complete'), () => phone.completeTransfer()));
  $('#btn-threeway').addEventListener('click', () => run($('#btn-threeway'), () => phone.threeway()));
  $('#btn-resume').addEventListener('click', () => run($('#btn-resume'), () => phone.resume()));
  $('#wrapup-form').addEventListener('submit', saveWrapup);
  $('#wrapup-close').addEventListener('click', closeWrapup);
  $('#log-refresh').addEventListener('click', loadCdrs);
  const pad = $('#dtmf-pad');
  for (const k of KEYS) {
    const id = k === '*' ? 'star' : k === '#' ? 'hash' : k;
    pad.append(el('button', { type: 'button', class: 'key', testid: `dtmf-${id}`, text: k, on: { click: () => sendDigit(k) } }));
  }
  document.addEventListener('keydown', onKey);
  onLangChange(() => {
    fillReasons();
    fillWrapupCode();
    shownVersion = -1;
    renderAll();
  });
  everySecond(() => {
    renderState();
    renderQueues();
    if (S.contact) renderPop(S.contact);
    if (S.call) renderCall();
  });
}

async function main() {
  wire();
  const acct = await boot();
  S.acct = acct;
  S.me = acct.agent || null;
  $('#user-name').textContent = acct.name && acct.name !== acct.user ? `${acct.name} (${acct.user})` : acct.user;
  $('#link-supervisor').hidden = !(acct.role === 'supervisor' || acct.role === 'admin');
  $('#app').hidden = false;
  cti = new Cti({
    onEvent,
    onOpen: () => clearBanner('ws'),
  });
  phone = new Phone(cti, { onChange: onPhoneChange });
  phone.exposeHooks();
  window.hotlineRinging = () => ring.playing;
  window.hotlineAgentState = () => (S.agent ? S.agent.state : null);
  window.hotline = { cti, phone, state: S };  // for debugging from the console
  meter($('#mic-meter'), () => phone.micLevel());
  meter($('#spk-meter'), () => phone.remoteLevel());
  fillWrapupCode();
  renderAll();
  cti.connect();
}

main().catch((e) => {
  console.error(e);
  banner('fatal', String(e), 'error');
});
