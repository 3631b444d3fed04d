/** One sample of a Prometheus text exposition. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)/y
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

/**
 * Parses Prometheus text format 0.0.4 strictly (what a Prometheus server would refuse, this throws on): HELP and TYPE
 * lines, sample names, escaped label values, numeric values, and every sample after its family's TYPE.
 */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = []
  const typed = new Map<string, string>()
  text.split('\n').forEach((line, i) => {
    const fail = (why: string) => {
      throw new Error(`line ${i + 1}: ${why}: ${JSON.stringify(line)}`)
    }
    if (line === '') return
    if (line.startsWith('#')) {
      const [, keyword, name, rest] = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line) ?? []
      if (!keyword) return // a plain comment
      if (!NAME.test(name!)) fail('bad metric name')
      if (keyword === 'TYPE') {
        if (!TYPES.has(rest!)) fail('unknown type')
        if (typed.has(name!)) fail('second TYPE line')
        typed.set(name!, rest!)
      }
      return
    }
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)( -?\d+)?$/.exec(line)
    if (!match) return fail('not a sample')
    const [, name, labelText, rawValue] = match
    const family = [name!, name!.replace(/_(bucket|sum|count|total|created)$/, '')].find((n) => typed.has(n))
    if (!family) fail('sample before its TYPE line')
    const value = rawValue === '+Inf' ? Infinity : rawValue === '-Inf' ? -Infinity : rawValue === 'NaN' ? NaN : Number(rawValue)
    if (Number.isNaN(value) && rawValue !== 'NaN') fail('bad value')
    const labels: Record<string, string> = {}
    if (labelText) {
      const inner = labelText.slice(1, -1)
      LABEL.lastIndex = 0
      while (LABEL.lastIndex < inner.length) {
        const label = LABEL.exec(inner)
        if (!label) fail('bad labels')
        labels[label![1]!] = label![2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\')
      }
    }
    samples.push({ name: name!, labels, value })
  })
  return samples
}

/** The sum of a metric's samples whose labels include `labels`. */
export function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0)
}
