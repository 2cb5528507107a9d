// The feed of recent handler calls (`GET /calls?limit=50`, newest first).
// Each call is a button; choosing one shows the causal chain of its event.

import { clock, h, millis, reconcile, setAttr } from './dom.js';

/** A call's identity across polls: one attempt run of one handler on one record. */
function key(call) {
  return `${call.handler}\u0000${call.topic}\u0000${call.partition}\u0000${call.offset}\u0000${call.startedAt}`;
}

/** `select(call)` is called when the user picks a call. */
export function callFeed({ list, select }) {
  const items = new Map();
  let selected = null;

  function item(call) {
    const button = h('button', {
      type: 'button',
      className: `call outcome-${call.outcome}`,
      'aria-pressed': 'false',
      dataset: {
        testid: 'call',
        handler: call.handler,
        eventType: call.eventType ?? '',
        eventId: call.eventId ?? '',
        outcome: call.outcome,
      },
      onclick: () => {
        selected = key(call);
        for (const [k, li] of items) setAttr(li.firstElementChild, 'aria-pressed', String(k === selected));
        select(call);
      },
    },
    h('time', { datetime: call.startedAt }, clock(call.startedAt)),
    h('span', { className: 'handler' }, call.handler),
    h('span', { className: 'event-type' }, call.eventType ?? '(no type)'),
    h('span', { className: 'outcome' }, call.outcome),
    h('span', { className: 'where mono' }, `${call.topic}/${call.partition}@${call.offset}`),
    h('span', { className: 'duration' }, millis(call.durationMs)),
    call.attempts > 1 ? h('span', { className: 'attempts' }, `${call.attempts} attempts`) : null,
    call.published?.length ? h('span', { className: 'published' }, `→ ${call.published.length} published`) : null,
    call.error ? h('span', { className: 'error-text' }, call.error) : null);
    return h('li', {}, button);
  }

  /** Shows `calls` (the `calls` of `GET /calls`). */
  return function update(calls) {
    const seen = new Set();
    const wanted = [];
    for (const call of calls) {
      const k = key(call);
      if (seen.has(k)) continue;
      seen.add(k);
      let li = items.get(k);
      if (!li) {
        li = item(call);
        setAttr(li.firstElementChild, 'aria-pressed', String(k === selected));
        items.set(k, li);
      }
      wanted.push(li);
    }
    for (const k of items.keys()) if (!seen.has(k)) items.delete(k);
    reconcile(list, wanted);
  };
}
