// The page's entry point: polls the host once a second while the tab is
// visible (handlers, recent calls, the open chain), and wires the upload
// form, the error list and the chain panel.

import { api, ApiError } from './api.js';
import { callFeed } from './calls.js';
import { chainTree, traceTrees } from './chain.js';
import { clock, h } from './dom.js';
import { handlerTable } from './handlers.js';

const POLL_MS = 1000;
const CALL_LIMIT = 50;
const ERRORS_KEPT = 5;

const $ = (id) => document.getElementById(id);

// ---- errors of what the user asked for (polling problems go to the status line)

function report(error) {
  const list = $('error-list');
  const message = error instanceof Error ? error.message : String(error);
  const li = h('li', { dataset: { testid: 'error-message' } },
    h('span', {}, message),
    h('button', {
      type: 'button',
      'aria-label': 'Dismiss this error',
      onclick: () => {
        li.remove();
        $('errors').hidden = list.children.length === 0;
      },
    }, 'Dismiss'));
  list.prepend(li);
  while (list.children.length > ERRORS_KEPT) list.lastElementChild.remove();
  $('errors').hidden = false;
}

function connection(ok, text) {
  const el = $('connection');
  el.textContent = text;
  el.dataset.state = ok ? 'live' : 'offline';
}

// ---- polling

// Bumped by every change made from the page: a poll that started before
// it may carry the old state and is not shown.
let generation = 0;
let polling = false;
let again = false;
let timer = null;

function changed() {
  generation += 1;
  tick();
}

async function tick() {
  clearTimeout(timer);
  timer = null;
  if (document.hidden) return;
  if (polling) {
    again = true;
    return;
  }
  polling = true;
  try {
    await Promise.all([pollHandlers(generation), pollCalls(), pollChain()]);
  } finally {
    polling = false;
    if (!document.hidden) timer = setTimeout(tick, again ? 0 : POLL_MS);
    again = false;
  }
}

document.addEventListener('visibilitychange', () => {
  if (document.hidden) {
    clearTimeout(timer);
    timer = null;
  } else {
    tick();
  }
});

const showHandlers = handlerTable({
  body: $('handler-rows'),
  empty: $('no-handlers'),
  report,
  changed,
});

async function pollHandlers(started) {
  try {
    const views = await api('GET', '/handlers');
    if (started !== generation) {
      again = true;
      return;
    }
    showHandlers(views, performance.now());
    connection(true, `live · updated ${clock(new Date().toISOString())}`);
  } catch (e) {
    connection(false, `cannot read the handlers: ${e.message}`);
  }
}

// ---- the call feed

const showCalls = callFeed({ list: $('calls'), select: openCall });
// False once the host said it has no call feed (an older host).
let callsAvailable = true;

function callsNote(text) {
  const note = $('calls-note');
  note.textContent = text;
  note.hidden = !text;
}

async function pollCalls() {
  if (!callsAvailable) return;
  try {
    const answer = await api('GET', `/calls?limit=${CALL_LIMIT}`);
    const calls = answer?.calls ?? [];
    showCalls(calls);
    callsNote(calls.length ? '' : 'No handler calls yet.');
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      callsAvailable = false;
      callsNote('This host keeps no record of calls (it has no GET /calls).');
    } else {
      callsNote(`cannot read the calls: ${e.message}`);
    }
  }
}

// ---- the chain panel: the event of the chosen call, or its whole trace

// {kind: 'event' | 'trace', id, traceId} or null when closed.
let subject = null;
// The last answer shown, to redraw only when it changes.
let shown = '';

function openCall(call) {
  $('chain-section').hidden = false;
  shown = '';
  if (!call.eventId) {
    subject = null;
    $('chain-subject').textContent = `${call.handler} at ${call.topic}/${call.partition}@${call.offset}: the record has no event id, so it has no chain.`;
    $('chain').replaceChildren();
    $('trace-show').hidden = true;
    return;
  }
  subject = { kind: 'event', id: call.eventId, traceId: call.traceId };
  $('trace-show').hidden = !call.traceId;
  $('chain-subject').textContent = `What event ${call.eventId} (${call.eventType ?? 'no type'}) caused`;
  pollChain();
}

$('trace-show').addEventListener('click', () => {
  if (!subject?.traceId) return;
  subject = { kind: 'trace', id: subject.traceId, traceId: subject.traceId };
  shown = '';
  $('trace-show').hidden = true;
  $('chain-subject').textContent = `Every chain of trace ${subject.id}`;
  pollChain();
});

$('chain-close').addEventListener('click', () => {
  subject = null;
  shown = '';
  $('chain-section').hidden = true;
  $('chain').replaceChildren();
});

async function pollChain() {
  const asked = subject;
  if (!asked) return;
  const path = asked.kind === 'event'
    ? `/events/${encodeURIComponent(asked.id)}/chain`
    : `/traces/${encodeURIComponent(asked.id)}`;
  let answer;
  try {
    answer = await api('GET', path);
  } catch (e) {
    if (subject !== asked) return;
    const text = e instanceof ApiError && e.status === 404
      ? `Nothing recorded for ${asked.kind} ${asked.id} (yet).`
      : `cannot read the chain: ${e.message}`;
    shown = '';
    $('chain').replaceChildren(h('p', { className: 'note', dataset: { testid: 'chain-note' } }, text));
    return;
  }
  if (subject !== asked) return;
  const json = JSON.stringify(answer);
  if (json === shown) return;
  shown = json;
  $('chain').replaceChildren(...(asked.kind === 'event' ? [chainTree(answer)] : traceTrees(answer)));
}

// ---- uploading a component

const upload = $('upload');

upload.elements.file.addEventListener('change', () => {
  const file = upload.elements.file.files[0];
  if (file && !upload.elements.name.value) {
    upload.elements.name.value = file.name.replace(/\.wasm$/i, '');
  }
});

upload.addEventListener('submit', async (event) => {
  event.preventDefault();
  const file = upload.elements.file.files[0];
  const name = upload.elements.name.value.trim();
  const result = upload.elements.result;
  if (!file || !name) return;
  const submit = upload.querySelector('button[type=submit]');
  submit.disabled = true;
  result.textContent = `uploading ${file.name} (${file.size} bytes)…`;
  try {
    const view = await api('PUT', `/handlers/${encodeURIComponent(name)}`, {
      body: file,
      contentType: 'application/wasm',
    });
    upload.reset();
    result.textContent = `${view.name}: ${view.status}, version ${view.version?.slice(0, 12) ?? '—'}`;
    changed();
  } catch (e) {
    result.textContent = '';
    report(e);
  } finally {
    submit.disabled = false;
  }
});

tick();
