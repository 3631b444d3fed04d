import type { BreakerView } from '../../admin/breakers.ts'
import type { EventFilter, LoggedEvent } from '../../admin/events.ts'
import type { EventHistory } from '../../admin/history.ts'
import type { Overview } from '../../admin/overview.ts'
import type { FailedDelivery, ReplayResult } from '../../admin/replay.ts'
import { html, type Html } from './html.ts'

export const CONSOLE = '/admin/console'
export type Section = 'overview' | 'events' | 'failed' | 'destinations'

const SECTIONS: { id: Section; title: string; href: string }[] = [
  { id: 'overview', title: 'Overview', href: '/admin' },
  { id: 'events', title: 'Events', href: `${CONSOLE}/events` },
  { id: 'failed', title: 'Failed deliveries', href: `${CONSOLE}/failed` },
  { id: 'destinations', title: 'Destinations', href: `${CONSOLE}/destinations` },
]

export interface Page {
  title: string
  section?: Section
  /** The session's CSRF token, for the sign-out form; absent on the sign-in page. */
  csrf?: string
  /** Reload <main> every this many ms (the overview). */
  refreshMs?: number
}

/** A whole page: header with navigation and sign-out, <main> with `content`. */
export function layout(page: Page, content: Html): Html {
  const nav = page.csrf
    ? html`<header>
        <span class="brand">hookgate</span>
        <nav aria-label="Console"><ul>${SECTIONS.map(
          (s) => html`<li><a href="${s.href}" ${s.id === page.section ? html`aria-current="page"` : ''}>${s.title}</a></li>`,
        )}</ul></nav>
        <form method="post" action="/admin/logout"><input type="hidden" name="csrf" value="${page.csrf}"><button>Sign out</button></form>
      </header>`
    : ''
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${page.title} · hookgate</title><link rel="stylesheet" href="${CONSOLE}/assets/console.css"><link rel="icon" href="data:,">
<script src="${CONSOLE}/assets/console.js" defer></script></head>
<body><a class="skip" href="#main">Skip to content</a>${nav}
<main id="main" tabindex="-1" ${page.refreshMs ? html`data-refresh="${page.refreshMs}"` : ''}>${content}</main></body></html>`
}

export function signInPage(options: { next: string; failed: boolean }): Html {
  return html`<div class="signin"><h1>hookgate console</h1>
    ${options.failed ? html`<p class="notice error" role="alert">That is not the admin token.</p>` : ''}
    <form method="post" action="/admin/login">
      <input type="hidden" name="next" value="${options.next}">
      <label for="token">Admin token (ADMIN_TOKEN)</label>
      <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
      <button class="primary">Sign in</button>
    </form></div>`
}

const time = (ms: number | undefined) => (ms === undefined ? '–' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19))
const number = (n: number | undefined, unit = '') => (n === undefined ? '–' : `${n.toLocaleString('en')}${unit}`)

export function overviewPage(data: Overview): Html {
  const queues = Object.entries(data.queues)
  return html`<h1>Overview</h1>
  <p class="muted">Last hour, from each instance's event log; updated ${time(data.at)} UTC, every few seconds.</p>
  <div class="scroll"><table aria-label="Instances" class="stack">
    <thead><tr><th scope="col">Instance</th><th scope="col" class="num">Events/min</th><th scope="col" class="num">Delivered (1 h)</th>
      <th scope="col" class="num">Failed (1 h)</th><th scope="col" class="num">p95 receive→deliver</th><th scope="col" class="num">Rate limit use</th><th scope="col">Open breakers</th></tr></thead>
    <tbody>${data.instances.map(
      (i) => html`<tr data-instance="${i.id}">
        <th scope="row"><a href="${CONSOLE}/events?instance=${encodeURIComponent(i.id)}">${i.id}</a>${i.partial ? html` <span class="muted" title="more than one look reads">(partial)</span>` : ''}</th>
        <td class="num" data-label="Events/min" data-field="eventsPerMinute">${number(i.eventsPerMinute)}</td>
        <td class="num ok" data-label="Delivered (1 h)" data-field="delivered">${number(i.delivered)}</td>
        <td class="num ${i.failed ? 'bad' : ''}" data-label="Failed (1 h)" data-field="failed">${i.failed ? html`<a href="${CONSOLE}/failed?instance=${encodeURIComponent(i.id)}">${number(i.failed)}</a>` : '0'}</td>
        <td class="num" data-label="p95 receive→deliver">${number(i.p95LatencyMs, ' ms')}</td>
        <td class="num ${i.rateLimitUsePercent >= 80 ? 'warn' : ''}" data-label="Rate limit use"><span>${i.rateLimitUsePercent}% <span class="muted">of ${i.ratePerSecond}/s</span></span></td>
        <td data-label="Open breakers">${i.openBreakers.length ? html`<a class="bad" href="${CONSOLE}/destinations">${i.openBreakers.join(', ')}</a>` : html`<span class="muted">none</span>`}</td>
      </tr>`,
    )}</tbody></table></div>
  <h2>Queues</h2>
  <div class="scroll"><table aria-label="Queue depths" class="stack"><thead><tr><th scope="col">Queue</th><th scope="col" class="num">Waiting</th><th scope="col" class="num">Active</th><th scope="col" class="num">Delayed</th><th scope="col" class="num">Failed</th></tr></thead>
    <tbody>${queues.map(([name, d]) => html`<tr><th scope="row">${name}</th><td class="num" data-label="Waiting">${number(d.waiting)}</td><td class="num" data-label="Active">${number(d.active)}</td><td class="num" data-label="Delayed">${number(d.delayed)}</td><td class="num ${d.failed ? 'bad' : ''}" data-label="Failed">${number(d.failed)}</td></tr>`)}</tbody></table></div>
  <p class="muted">Jobs by id: <a href="/admin/queues">the queue dashboard</a>.</p>`
}

export const KINDS: { kind: LoggedEvent['kind']; label: string }[] = [
  { kind: 'routed', label: 'routed' },
  { kind: 'delivered', label: 'delivered' },
  { kind: 'attempt_failed', label: 'try failed (will retry)' },
  { kind: 'delivery_failed', label: 'failed for good' },
  { kind: 'answer_rejected', label: 'answer rejected' },
  { kind: 'posted', label: 'posted to Chatwoot' },
]
const KIND_CLASS: Record<string, string> = { delivered: 'ok', posted: 'ok', attempt_failed: 'warn', delivery_failed: 'bad', answer_rejected: 'bad' }

export interface EventsView {
  instances: string[]
  filter: EventFilter & { instance?: string; since?: string; until?: string }
  lines: (LoggedEvent & { instance: string })[]
  /** Query string of the filter, for the live stream. */
  query: string
}

/** One log line as a table row: also what the live stream sends. */
export function eventRow(line: LoggedEvent & { instance: string }): Html {
  const eventJob = line.kind === 'routed' ? line.jobId : line.jobId.replace(/\.r\d+$/, '')
  const detail = line.error ?? line.answer ?? (line.routes ? `routes ${line.routes.join(', ') || 'none'}` : '')
  return html`<tr><td>${time(line.at)}</td><td>${line.instance}</td>
    <td><a href="${CONSOLE}/events/${encodeURIComponent(line.instance)}/${encodeURIComponent(eventJob)}">${line.event || '–'}</a></td>
    <td>${line.conversation ? `#${line.conversation.conversationId}` : '–'}</td>
    <td><span class="badge ${KIND_CLASS[line.kind] ?? ''}">${KINDS.find((k) => k.kind === line.kind)?.label ?? line.kind}</span></td>
    <td class="hide-small">${line.host ?? ''}${line.status ? ` · ${line.status}` : ''}${line.ms !== undefined ? ` · ${line.ms} ms` : ''}</td>
    <td class="hide-small">${detail.length > 120 ? `${detail.slice(0, 120)}…` : detail}</td></tr>`
}

export function eventsPage(view: EventsView): Html {
  const { filter } = view
  return html`<h1>Events</h1>
  <form class="filters" method="get" role="search" aria-label="Filter events">
    <label>Instance <select name="instance"><option value="">all</option>${view.instances.map((id) => html`<option ${id === filter.instance ? 'selected' : ''}>${id}</option>`)}</select></label>
    <label>Event type <input name="event" value="${filter.event ?? ''}" placeholder="message_created" list="event-types"></label>
    <datalist id="event-types">${['message_created', 'message_updated', 'conversation_created', 'conversation_status_changed', 'conversation_updated', 'contact_created', 'contact_updated', 'webwidget_triggered'].map((e) => html`<option value="${e}">`)}</datalist>
    <label>Conversation <input name="conversation" inputmode="numeric" pattern="[0-9]*" value="${filter.conversation ?? ''}" size="8"></label>
    <label>Destination host <input name="host" value="${filter.host ?? ''}" placeholder="bot.example.com"></label>
    <label>Outcome <select name="kind"><option value="">any</option>${KINDS.map((k) => html`<option value="${k.kind}" ${k.kind === filter.kind ? 'selected' : ''}>${k.label}</option>`)}</select></label>
    <label>Since <input name="since" type="datetime-local" value="${filter.since ?? ''}"></label>
    <label>Until <input name="until" type="datetime-local" value="${filter.until ?? ''}"></label>
    <button class="primary">Filter</button> <a href="${CONSOLE}/events">Clear</a>
  </form>
  <p id="live-status" role="status" aria-live="polite" class="muted">${filter.until ? 'Not live: the list ends at “until”.' : 'Live: new events appear at the top.'}</p>
  <div class="scroll"><table aria-label="Events, newest first" ${filter.until ? '' : html`data-stream="${CONSOLE}/stream?${view.query}"`}>
    <thead><tr><th scope="col">Time (UTC)</th><th scope="col">Instance</th><th scope="col">Event</th><th scope="col">Conversation</th><th scope="col">Outcome</th><th scope="col" class="hide-small">Destination</th><th scope="col" class="hide-small">Detail</th></tr></thead>
    <tbody>${view.lines.length ? view.lines.map(eventRow) : html`<tr class="empty"><td colspan="7" class="muted">No events match.</td></tr>`}</tbody>
  </table></div>`
}

export function eventPage(history: EventHistory, csrf: string): Html {
  const back = `${CONSOLE}/events/${encodeURIComponent(history.instance)}/${encodeURIComponent(history.jobId)}`
  const conversation = history.routed?.conversation
  return html`<h1>${history.event ?? 'Event'} <span class="muted">${history.jobId}</span></h1>
  <div class="cards">
    <div class="card">Instance<b>${history.instance}</b></div>
    <div class="card">Conversation<b>${conversation ? `#${conversation.conversationId}` : '–'}</b>${conversation ? html`<span class="muted">account ${conversation.accountId}</span>` : ''}</div>
    <div class="card">Routed<b>${history.routed ? time(history.routed.at) : '–'}</b><span class="muted">${history.routed ? `to routes ${history.routed.routes?.join(', ') || 'none'}` : 'not in the log'}</span></div>
  </div>
  ${history.deliveries.map(
    (d) => html`<section aria-labelledby="d-${d.route}">
      <h2 id="d-${d.route}">Route ${d.route}: ${d.host ?? 'destination'} <span class="badge ${d.outcome === 'delivered' ? 'ok' : d.outcome === 'failed' ? 'bad' : 'warn'}">${d.outcome}</span></h2>
      <div class="scroll"><table aria-label="Delivery attempts to ${d.host ?? 'the destination'}">
        <thead><tr><th scope="col">Time (UTC)</th><th scope="col" class="num">Try</th><th scope="col">Outcome</th><th scope="col" class="num">Status</th><th scope="col" class="num">Duration</th><th scope="col">Answer or error</th></tr></thead>
        <tbody>${d.attempts.length
          ? d.attempts.map(
              (a) => html`<tr data-attempt="${a.attempt ?? ''}"><td>${time(a.at)}</td><td class="num">${a.attempt ?? '–'}</td>
                <td><span class="badge ${KIND_CLASS[a.kind] ?? ''}">${KINDS.find((k) => k.kind === a.kind)?.label}</span></td>
                <td class="num">${a.status ?? '–'}</td><td class="num">${a.ms === undefined ? '–' : `${a.ms} ms`}</td>
                <td><code>${a.error ?? a.answer ?? ''}</code></td></tr>`,
            )
          : html`<tr><td colspan="6" class="muted">No try yet.</td></tr>`}</tbody></table></div>
      ${d.answers.length ? html`<h3>Posted back to Chatwoot</h3><ul>${d.answers.map((a) => html`<li>${time(a.at)}: ${a.kind === 'posted' ? a.answer : html`<span class="bad">answer rejected: ${a.error}</span>`}</li>`)}</ul>` : ''}
      ${d.replayable
        ? html`<form method="post" action="${CONSOLE}/replay"><input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="jobIds" value="${d.id}"><input type="hidden" name="back" value="${back}"><button class="primary">Replay this delivery…</button></form>`
        : ''}
    </section>`,
  )}
  <h2>Body</h2>
  ${history.body ? html`<pre tabindex="0" aria-label="Event body">${prettyJson(history.body)}</pre>` : html`<p class="muted">No longer kept (EVENT_BODIES_KEPT latest bodies per instance, and failed deliveries' own).</p>`}`
}

function prettyJson(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), null, 2)
  } catch {
    return body
  }
}

export interface FailedView {
  instances: string[]
  filter: { instance?: string; destination?: string; conversation?: number }
  deliveries: FailedDelivery[]
  total: number
  groups: { instance: string; destination: string; count: number }[]
}

const hostOf = (url: string | undefined) => (url ? new URL(url).host : '–')

export function failedPage(view: FailedView, csrf: string): Html {
  const { filter } = view
  return html`<h1>Failed deliveries</h1>
  <form class="filters" method="get" role="search" aria-label="Filter failed deliveries">
    <label>Instance <select name="instance"><option value="">all</option>${view.instances.map((id) => html`<option ${id === filter.instance ? 'selected' : ''}>${id}</option>`)}</select></label>
    <label>Destination (URL or host) <input name="destination" value="${filter.destination ?? ''}"></label>
    <label>Conversation <input name="conversation" inputmode="numeric" pattern="[0-9]*" value="${filter.conversation ?? ''}" size="8"></label>
    <button class="primary">Filter</button> <a href="${CONSOLE}/failed">Clear</a>
  </form>
  <h2>By instance and destination</h2>
  <div class="scroll"><table aria-label="Failed deliveries by instance and destination"><thead><tr><th scope="col">Instance</th><th scope="col">Destination</th><th scope="col" class="num">Failed</th><th scope="col">Replay</th></tr></thead>
  <tbody>${view.groups.length
    ? view.groups.map(
        (g) => html`<tr><td>${g.instance}</td><td>${g.destination}</td><td class="num">${g.count}</td><td>
          <form method="post" action="${CONSOLE}/replay"><input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="instance" value="${g.instance}"><input type="hidden" name="destination" value="${g.destination}">
          ${filter.conversation !== undefined ? html`<input type="hidden" name="conversation" value="${filter.conversation}">` : ''}
          <button>Replay all ${g.count}…</button></form></td></tr>`,
      )
    : html`<tr><td colspan="4" class="muted">No failed deliveries match.</td></tr>`}</tbody></table></div>
  <h2>Deliveries <span class="muted">(${view.deliveries.length} of ${view.total})</span></h2>
  <form method="post" action="${CONSOLE}/replay" id="selection"><input type="hidden" name="csrf" value="${csrf}"></form>
  ${view.deliveries.map((d, i) => html`<form method="post" action="${CONSOLE}/replay" id="one-${i}"><input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="jobIds" value="${d.id}"></form>`)}
  <div class="scroll"><table aria-label="Failed deliveries, newest first"><thead><tr>
    <th scope="col"><input type="checkbox" data-select-all="jobIds" aria-label="Select all"></th><th scope="col">Failed at (UTC)</th><th scope="col">Instance</th><th scope="col">Event</th><th scope="col">Conversation</th><th scope="col">Destination</th><th scope="col" class="num">Tries</th><th scope="col">Why</th><th scope="col">Replay</th></tr></thead>
  <tbody>${view.deliveries.map(
    (d, i) => html`<tr><td><input type="checkbox" name="jobIds" value="${d.id}" form="selection" aria-label="Select ${d.id}"></td><td>${time(d.failedAt)}</td><td>${d.instance}</td>
      <td><a href="${CONSOLE}/events/${encodeURIComponent(d.instance)}/${encodeURIComponent(d.id.replace(/\.r\d+$/, ''))}">${d.event}</a></td>
      <td>${d.conversation ? `#${d.conversation.conversationId}` : '–'}</td><td>${hostOf(d.destination)}</td><td class="num">${d.attempts}</td><td>${d.reason}</td>
      <td><button form="one-${i}" aria-label="Replay ${d.id}">Replay…</button></td></tr>`,
  )}</tbody></table></div>
  ${view.deliveries.length ? html`<p><button form="selection">Replay selected…</button></p>` : ''}`
}

/** Asks before a replay, with what it would send. */
export function confirmReplayPage(fields: Record<string, string | string[]>, wouldReplay: number, csrf: string): Html {
  const hidden = Object.entries(fields).flatMap(([name, value]) => [value].flat().map((v) => html`<input type="hidden" name="${name}" value="${v}">`))
  return html`<h1>Replay failed deliveries?</h1>
  <p class="notice" role="alert">This sends <strong>${wouldReplay}</strong> failed deliver${wouldReplay === 1 ? 'y' : 'ies'} again, with their tries reset. A delivery its destination already had is not sent twice.</p>
  <form method="post" action="${CONSOLE}/replay">${hidden}<input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="confirm" value="yes">
    <button class="primary" ${wouldReplay === 0 ? 'disabled' : ''}>Replay ${wouldReplay}</button> <a href="${CONSOLE}/failed">Cancel</a></form>`
}

export function replayResultPage(result: ReplayResult, backTo: string): Html {
  return html`<h1>Replayed</h1>
  <p class="notice" role="status">Sent again: <strong>${result.replayed.length}</strong>${result.skipped.length ? html`; skipped ${result.skipped.length} (no longer failed)` : ''}${result.more ? '; more remain: replay again' : ''}.</p>
  <ul>${result.replayed.slice(0, 50).map((id) => html`<li>${id}</li>`)}</ul>
  ${result.skipped.length ? html`<h2>Skipped</h2><ul>${result.skipped.slice(0, 50).map((s) => html`<li>${s.id}: ${s.reason}</li>`)}</ul>` : ''}
  <p><a href="${backTo}">Back</a></p>`
}

export function destinationsPage(breakers: BreakerView[], csrf: string, closed?: string): Html {
  return html`<h1>Destinations</h1>
  ${closed ? html`<p class="notice" role="status">Breaker of ${closed} closed: its next delivery goes now; deliveries that were waiting go within their wait.</p>` : ''}
  <div class="scroll"><table aria-label="Destinations and their breakers"><thead><tr><th scope="col">Destination</th><th scope="col">Instances</th><th scope="col">Breaker</th><th scope="col" class="num">Failures in a row</th><th scope="col">Action</th></tr></thead>
  <tbody>${breakers.map(
    (b) => html`<tr data-host="${b.host}"><th scope="row">${b.host}<br><span class="muted">${b.destination}</span></th><td>${b.instances.join(', ')}</td>
      <td><span class="badge ${b.state === 'closed' ? 'ok' : 'bad'}" data-state="${b.state}">${b.state.replace('_', '-')}</span>${b.state === 'open' ? html` <span class="muted">probe in ${Math.ceil(b.openForMs / 1000)} s</span>` : ''}</td>
      <td class="num">${b.failures}</td>
      <td>${b.state === 'closed' && b.failures === 0 ? '' : html`<form method="post" action="${CONSOLE}/breakers/close"><input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="destination" value="${b.destination}"><button aria-label="Close the breaker of ${b.host}">Close breaker</button></form>`}</td></tr>`,
  )}</tbody></table></div>`
}

export function messagePage(title: string, message: string): Html {
  return html`<h1>${title}</h1><p class="notice error" role="alert">${message}</p><p><a href="/admin">Overview</a></p>`
}
