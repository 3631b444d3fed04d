import { describe, expect, test } from 'bun:test'
import { parse, type Node } from 'acorn'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { k6EventsSource } from '../../scripts/generate-k6-events.ts'

const LOADTEST = join(import.meta.dir, '../../loadtest')
const SCENARIOS = ['smoke.js', 'throughput.js', 'dedupe.js', 'spike.js', 'soak.js', 'ratelimit.js']
const SCRIPTS = [...SCENARIOS, ...readdirSync(join(LOADTEST, 'lib')).filter((f) => f.endsWith('.js')).map((f) => `lib/${f}`)]
/** k6 modules that every k6 from v0.45 to v1.x has, with the same API. */
const K6_MODULES = new Set(['k6', 'k6/http', 'k6/crypto', 'k6/metrics', 'k6/data'])
/** Globals of Node, Bun or browsers that k6's runtime does not have (or not in v0.45). */
const FOREIGN_GLOBALS = new Set(['require', 'module', 'process', 'Bun', 'Buffer', 'fetch', 'setTimeout', 'setInterval', 'TextEncoder', 'TextDecoder', 'structuredClone', 'globalThis'])

/** ES2017 is what every supported k6 parses: no ?., no ??, no object spread, no optional catch binding, no top-level await. */
function parseAsK6(source: string): Node {
  return parse(source, { ecmaVersion: 2017, sourceType: 'module' })
}

function walk(node: unknown, visit: (node: Node) => void): void {
  if (!node || typeof node !== 'object') return
  if (Array.isArray(node)) return node.forEach((child) => walk(child, visit))
  if (typeof (node as Node).type === 'string') visit(node as Node)
  for (const [key, value] of Object.entries(node)) if (key !== 'type') walk(value, visit)
}

async function source(file: string): Promise<string> {
  return Bun.file(join(LOADTEST, file)).text()
}

describe('the k6 scenarios in loadtest/', () => {
  test('parse at ES2017, the syntax of k6 v0.45, which rejects ?., ?? and friends', async () => {
    for (const file of SCRIPTS) {
      const text = await source(file)
      expect(() => parseAsK6(text), file).not.toThrow()
    }
    for (const newer of ['a?.b', 'a ?? b', 'var c = { ...a }', 'try {} catch {}', 'await 1', 'for await (const x of y) {}']) {
      expect(() => parseAsK6(newer), newer).toThrow()
    }
  })

  test('import only long-standing k6 modules and each other, and use no Node, Bun or browser globals', async () => {
    for (const file of SCRIPTS) {
      const imports: string[] = []
      const foreign: string[] = []
      walk(parseAsK6(await source(file)), (node) => {
        if (node.type === 'ImportDeclaration') imports.push(String((node as unknown as { source: { value: string } }).source.value))
        if (node.type === 'Identifier' && FOREIGN_GLOBALS.has((node as unknown as { name: string }).name)) foreign.push((node as unknown as { name: string }).name)
      })
      expect(imports.filter((m) => !m.startsWith('./') && !K6_MODULES.has(m)), file).toEqual([])
      expect(imports.filter((m) => m.startsWith('./')).every((m) => m.endsWith('.js')), file).toBe(true)
      expect(foreign, file).toEqual([])
    }
  })

  test('each scenario exports options, setup, handleSummary and the functions its scenarios run', async () => {
    for (const file of SCENARIOS) {
      const exported = new Set<string>()
      walk(parseAsK6(await source(file)), (node) => {
        if (node.type === 'ExportDefaultDeclaration') exported.add('default')
        if (node.type === 'ExportNamedDeclaration') {
          const declaration = (node as unknown as { declaration: { id?: { name: string }; declarations?: { id: { name: string } }[] } }).declaration
          if (declaration?.id) exported.add(declaration.id.name)
          for (const d of declaration?.declarations ?? []) exported.add(d.id.name)
        }
      })
      expect([...exported].sort(), file).toEqual(expect.arrayContaining(['handleSummary', 'options', 'setup']))
      const execs = [...(await source(file)).matchAll(/exec: '(\w+)'/g)].map((m) => m[1]!)
      for (const exec of execs.length ? execs : ['default']) expect(exported.has(exec), `${file}: ${exec}`).toBe(true)
    }
  })

  test('type-check against k6\'s API, as of v1.x and as of v0.45 (the oldest supported)', async () => {
    for (const project of ['loadtest/tsconfig.k6.json', 'loadtest/tsconfig.k6-0.45.json']) {
      const tsc = Bun.spawn(['bun', 'x', 'tsc', '-p', project], { cwd: join(LOADTEST, '..'), stdout: 'pipe', stderr: 'pipe' })
      const output = (await new Response(tsc.stdout).text()) + (await new Response(tsc.stderr).text())
      expect({ project, code: await tsc.exited, output }).toEqual({ project, code: 0, output: '' })
    }
  }, 60_000)

  test('carry the test fixtures\' Chatwoot events (run scripts/generate-k6-events.ts after changing them)', async () => {
    expect(await source('lib/events.js')).toBe(k6EventsSource())
  })
})
