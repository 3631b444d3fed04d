// @ts-check
import { env } from './config.js'

/**
 * The scenario's handleSummary: a short text summary on stdout, and the same text plus k6's whole summary data as
 * JSON in SUMMARY_DIR (<scenario>-summary.txt and <scenario>-summary.json), for a CI job to keep or compare.
 * @param {string} scenario
 */
export function summaryWriter(scenario) {
  var dir = env('SUMMARY_DIR', '.').replace(/\/+$/, '')
  /** @param {any} data */
  return function handleSummary(data) {
    var text = textSummary(scenario, data)
    /** @type {Record<string, string>} */
    var files = { stdout: text }
    files[dir + '/' + scenario + '-summary.txt'] = text
    files[dir + '/' + scenario + '-summary.json'] = JSON.stringify(data, null, 2)
    return files
  }
}

/** Percentiles every scenario asks k6 to keep (options.summaryTrendStats). */
export var TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count']

/** @param {string} scenario @param {any} data @returns {string} */
function textSummary(scenario, data) {
  var metrics = data.metrics || {}
  var lines = ['', 'hookgate ' + scenario + ' summary', '']
  var duration = metrics.http_req_duration && metrics.http_req_duration.values
  var reqs = metrics.http_reqs && metrics.http_reqs.values
  var failed = metrics.http_req_failed && metrics.http_req_failed.values
  var checks = metrics.checks && metrics.checks.values
  if (reqs) lines.push('  requests      ' + reqs.count + ' (' + fixed(reqs.rate, 1) + '/s)')
  if (duration) {
    lines.push('  latency ms    p50 ' + fixed(duration.med, 2) + '  p95 ' + fixed(duration['p(95)'], 2) + '  p99 ' + fixed(duration['p(99)'], 2) + '  max ' + fixed(duration.max, 2))
  }
  if (failed) lines.push('  failed        ' + fixed(failed.rate * 100, 3) + ' %')
  if (checks) lines.push('  checks        ' + fixed(checks.rate * 100, 3) + ' % passed')
  var dropped = metrics.dropped_iterations && metrics.dropped_iterations.values
  if (dropped) lines.push('  dropped       ' + dropped.count + ' iterations (too few VUs for the arrival rate)')
  lines.push('', '  thresholds')
  var any = false
  Object.keys(metrics).sort().forEach(function (name) {
    var thresholds = metrics[name].thresholds || {}
    Object.keys(thresholds).forEach(function (expression) {
      any = true
      lines.push('    ' + (thresholds[expression].ok ? 'ok    ' : 'FAILED') + ' ' + name + ': ' + expression)
    })
  })
  if (!any) lines.push('    (none)')
  return lines.join('\n') + '\n\n'
}

/** @param {number | undefined} value @param {number} digits */
function fixed(value, digits) {
  return typeof value === 'number' ? value.toFixed(digits) : '-'
}
