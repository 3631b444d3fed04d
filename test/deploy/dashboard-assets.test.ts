import { expect, test } from 'bun:test'
import { join } from 'node:path'
import { dashboardAssetsSource } from '../../scripts/embed-dashboard-assets.ts'

test('the embedded queue dashboard files match the installed @bull-board/ui (run scripts/embed-dashboard-assets.ts after an upgrade)', async () => {
  const committed = await Bun.file(join(import.meta.dir, '../../src/http/dashboard-assets.gen.ts')).text()
  expect(committed).toBe(await dashboardAssetsSource())
})
