// A causal chain drawn as an indented tree of nested lists: an event, the
// handler calls it caused, what each call published, and so on down
// (`GET /events/:id/chain`; `GET /traces/:id` is a list of such chains).

import { clock, h, millis } from './dom.js';

/** The tree of one chain: `{eventId, calls}`. */
export function chainTree(chain) {
  const first = chain.calls?.[0];
  return h('ul', { className: 'tree', 'aria-label': `Chain of event ${chain.eventId}` },
    eventNode({
      eventId: chain.eventId,
      eventType: first?.eventType ?? null,
      topic: first?.topic ?? null,
      calls: chain.calls ?? [],
    }, true));
}

/** The trees of a whole trace: `{traceId, roots}`. */
export function traceTrees(trace) {
  const roots = trace.roots ?? [];
  if (!roots.length) return [h('p', { className: 'note' }, 'Nothing recorded for this trace.')];
  return roots.map(chainTree);
}

function eventNode(event, root = false) {
  const calls = event.calls ?? [];
  return h('li', {
    className: root ? 'event root' : 'event',
    dataset: {
      testid: 'chain-event',
      eventId: event.eventId ?? '',
      eventType: event.eventType ?? '',
      topic: event.topic ?? '',
    },
  },
  h('div', { className: 'node' },
    h('span', { className: 'kind' }, root ? 'event' : 'published'),
    h('span', { className: 'event-type' }, event.eventType ?? '(no type)'),
    event.topic ? h('span', { className: 'where' }, `on ${event.topic}`) : null,
    h('span', { className: 'mono id' }, event.eventId ?? '')),
  calls.length
    ? h('ul', {}, calls.map(callNode))
    : h('p', { className: 'note leaf' }, 'no handler call recorded for it (yet)'));
}

function callNode(call) {
  const published = call.published ?? [];
  return h('li', {
    className: `call-node outcome-${call.outcome}`,
    dataset: { testid: 'chain-call', handler: call.handler, outcome: call.outcome },
  },
  h('div', { className: 'node' },
    h('span', { className: 'kind' }, 'call'),
    h('span', { className: 'handler' }, call.handler),
    h('span', { className: 'outcome' }, call.outcome),
    h('span', { className: 'where mono' }, `${call.topic}/${call.partition}@${call.offset}`),
    h('time', { datetime: call.startedAt }, clock(call.startedAt)),
    h('span', { className: 'duration' }, millis(call.durationMs)),
    call.attempts > 1 ? h('span', { className: 'attempts' }, `${call.attempts} attempts`) : null,
    call.error ? h('span', { className: 'error-text' }, call.error) : null),
  published.length ? h('ul', {}, published.map((p) => eventNode(p))) : null);
}
