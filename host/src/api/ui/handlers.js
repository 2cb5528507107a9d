// The handlers table: one row per handler from `GET /handlers`, updated in
// place each poll, with its rate worked out here from the change in
// `stats.handled` between two polls, and the buttons that change it.

import { api } from './api.js';
import { h, reconcile, setAttr, setText } from './dom.js';

/**
 * `report(error)` shows a failed action; `changed()` asks for a refresh
 * after one succeeded.
 */
export function handlerTable({ body, empty, report, changed }) {
  const rows = new Map();
  // name -> { handled, at }: the previous poll's counter, for the rate.
  const previous = new Map();

  // While a change is under way its row's buttons stay disabled.
  async function act(row, run) {
    row.busy = true;
    enable(row);
    try {
      // Pause and resume answer with the handler: show it at once.
      const answer = await run();
      if (answer?.status) showStatus(row, answer);
      changed();
    } catch (e) {
      report(e);
    } finally {
      row.busy = false;
      enable(row);
    }
  }

  function enable(row) {
    const paused = row.view?.status === 'paused';
    row.pause.disabled = row.busy || paused;
    row.resume.disabled = row.busy || !paused;
    row.delete.disabled = row.busy;
  }

  function newRow(name) {
    const path = `/handlers/${encodeURIComponent(name)}`;
    const cell = (testid, className) => h('td', { dataset: { testid }, className });
    const row = {
      busy: false,
      view: null,
      status: h('span', { className: 'status', dataset: { testid: 'handler-status' } }),
      version: cell('handler-version', 'mono'),
      contract: cell('handler-contract', 'mono'),
      rate: cell('handler-rate', 'number'),
      handled: cell('handler-handled', 'number'),
      lag: cell('handler-lag', 'number'),
      lastError: cell('handler-last-error', 'last-error'),
    };
    row.pause = h('button', {
      type: 'button',
      'aria-label': `Pause ${name}`,
      dataset: { testid: 'pause' },
      onclick: () => act(row, () => api('POST', `${path}/pause`)),
    }, 'Pause');
    row.resume = h('button', {
      type: 'button',
      'aria-label': `Resume ${name}`,
      dataset: { testid: 'resume' },
      onclick: () => act(row, () => api('POST', `${path}/resume`)),
    }, 'Resume');
    row.delete = h('button', {
      type: 'button',
      className: 'danger',
      'aria-label': `Delete ${name}`,
      dataset: { testid: 'delete' },
      onclick: () => {
        if (!window.confirm(`Delete handler ${name}? Its consumer leaves its group and its file is deleted.`)) return;
        act(row, () => api('DELETE', path));
      },
    }, 'Delete');
    row.el = h('tr', { dataset: { testid: 'handler', name } },
      h('th', { scope: 'row', dataset: { testid: 'handler-name' } }, name),
      h('td', {}, row.status),
      row.version, row.contract, row.rate, row.handled, row.lag, row.lastError,
      h('td', { className: 'actions' }, row.pause, row.resume, row.delete));
    return row;
  }

  function rate(view, at) {
    const before = previous.get(view.name);
    previous.set(view.name, { handled: view.stats.handled, at });
    if (!before || view.stats.handled < before.handled || at <= before.at) return null;
    return ((view.stats.handled - before.handled) * 1000) / (at - before.at);
  }

  function showStatus(row, view) {
    row.view = view;
    setText(row.status, view.status);
    setAttr(row.status, 'class', `status status-${view.status}`);
  }

  function fill(row, view, perSecond) {
    showStatus(row, view);
    setText(row.version, view.version ? view.version.slice(0, 12) : '—');
    setAttr(row.version, 'title', view.version ? `SHA-256 ${view.version}` : null);
    setText(row.contract, view.contract ?? '—');
    setText(row.rate, perSecond === null ? '—' : `${perSecond.toFixed(perSecond < 10 ? 1 : 0)}/s`);
    const s = view.stats;
    const extra = [s.failed && `${s.failed} failed`, s.deadLettered && `${s.deadLettered} dead-lettered`]
      .filter(Boolean).join(', ');
    setText(row.handled, extra ? `${s.handled} (${extra})` : s.handled);
    setText(row.lag, s.lag ?? '—');
    setAttr(row.lag, 'title', Object.entries(s.lagByPartition ?? {}).map(([p, l]) => `${p}: ${l}`).join('\n') || null);
    setText(row.lastError, view.lastError ?? '');
    setAttr(row.lastError, 'title', view.lastError ?? null);
    enable(row);
  }

  /** Shows `views` (the answer of `GET /handlers`), polled at `at` ms. */
  return function update(views, at) {
    const names = new Set(views.map((v) => v.name));
    for (const name of rows.keys()) {
      if (!names.has(name)) {
        rows.delete(name);
        previous.delete(name);
      }
    }
    const wanted = [...views].sort((a, b) => a.name.localeCompare(b.name)).map((view) => {
      let row = rows.get(view.name);
      if (!row) rows.set(view.name, (row = newRow(view.name)));
      fill(row, view, rate(view, at));
      return row.el;
    });
    reconcile(body, wanted);
    empty.hidden = views.length > 0;
  };
}
