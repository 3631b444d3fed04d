import { expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const ROOT = join(import.meta.dir, '../..')

test('src/ shows the architecture: a few cross-cutting files beside its folders, and every folder is in the README\'s map', () => {
  const entries = readdirSync(join(ROOT, 'src'), { withFileTypes: true })
  expect(entries.filter((e) => e.isFile()).map((e) => e.name).sort()).toEqual(['answer-schema.ts', 'api.ts', 'assets.d.ts', 'errors.ts', 'log.ts', 'main.ts', 'metrics.ts'])
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const map = readme.slice(readme.indexOf('## Development'))
  for (const folder of entries.filter((e) => e.isDirectory()).map((e) => e.name)) expect({ folder, mapped: map.includes(`  ${folder}/ `) }).toEqual({ folder, mapped: true })
})
