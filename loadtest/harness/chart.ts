import type { Latencies } from './stats.ts'

const WIDTH = 720
const HEIGHT = 320
const MARGIN = { left: 56, right: 120, top: 36, bottom: 40 }
const SERIES = [
  { key: 'p50', color: '#2b8a3e' },
  { key: 'p95', color: '#e67700' },
  { key: 'p99', color: '#c92a2a' },
] as const

/** An SVG line chart of latency percentiles (ms) for each second of a run. */
export function latencyChartSvg(title: string, perSecond: readonly (Latencies & { second: number })[]): string {
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom
  const top = niceCeiling(Math.max(1, ...perSecond.map((s) => s.p99)))
  const lastSecond = Math.max(1, perSecond.length - 1)
  const x = (second: number) => MARGIN.left + (second / lastSecond) * plotWidth
  const y = (ms: number) => MARGIN.top + plotHeight - (Math.min(ms, top) / top) * plotHeight
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * top)
  const lines = SERIES.map(({ key, color }, i) => {
    const points = perSecond.map((s) => `${x(s.second).toFixed(1)},${y(s[key]).toFixed(1)}`).join(' ')
    const legendY = MARGIN.top + 16 + i * 18
    return [
      `<polyline fill="none" stroke="${color}" stroke-width="2" points="${points}"/>`,
      `<line x1="${WIDTH - MARGIN.right + 16}" y1="${legendY - 4}" x2="${WIDTH - MARGIN.right + 36}" y2="${legendY - 4}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${WIDTH - MARGIN.right + 42}" y="${legendY}">${key}</text>`,
    ].join('')
  })
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`,
    `<text x="${MARGIN.left}" y="20" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    ...ticks.map(
      (ms) =>
        `<line x1="${MARGIN.left}" y1="${y(ms)}" x2="${WIDTH - MARGIN.right}" y2="${y(ms)}" stroke="#ddd"/><text x="${MARGIN.left - 6}" y="${y(ms) + 4}" text-anchor="end">${+ms.toFixed(2)}</text>`,
    ),
    `<text x="14" y="${MARGIN.top + plotHeight / 2}" transform="rotate(-90 14 ${MARGIN.top + plotHeight / 2})" text-anchor="middle">latency, ms</text>`,
    `<text x="${MARGIN.left + plotWidth / 2}" y="${HEIGHT - 8}" text-anchor="middle">second of the run</text>`,
    ...[0, Math.round(lastSecond / 2), lastSecond].map((s) => `<text x="${x(s)}" y="${MARGIN.top + plotHeight + 16}" text-anchor="middle">${s}</text>`),
    ...lines,
    '</svg>',
    '',
  ].join('\n')
}

function niceCeiling(value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(value))
  return [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((step) => step >= value)!
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`)
}
