// The console's only script, served as /admin/console/assets/console.js. Pages work without it; it adds the live
// list, the overview's refresh and "select all". Plain JavaScript, type-checked by tsconfig.console.json.

const MAX_LIVE_ROWS = 500

/** @param {HTMLTableElement} table */
function liveList(table) {
  const body = table.tBodies[0]
  const status = document.getElementById('live-status')
  const url = table.dataset.stream
  if (!body || !url) return
  let added = 0
  const source = new EventSource(url)
  source.addEventListener('line', (message) => {
    const rows = document.createElement('tbody')
    rows.innerHTML = /** @type {MessageEvent<string>} */ (message).data
    const row = rows.firstElementChild
    if (!row) return
    row.classList.add('new')
    body.prepend(row)
    body.querySelector('tr.empty')?.remove()
    while (body.rows.length > MAX_LIVE_ROWS) body.lastElementChild?.remove()
    added++
    if (status) status.textContent = `${added} new event${added === 1 ? '' : 's'} since the page opened`
  })
  source.addEventListener('open', () => status?.setAttribute('data-live', 'on'))
  source.addEventListener('error', () => status?.setAttribute('data-live', 'reconnecting'))
}

/** @param {HTMLElement} main */
function refresh(main) {
  setInterval(async () => {
    if (document.hidden) return
    const response = await fetch(location.href, { headers: { 'x-console-fragment': '1' } }).catch(() => undefined)
    if (response?.ok) main.innerHTML = await response.text()
  }, Number(main.dataset.refresh))
}

/** @param {HTMLInputElement} box */
function selectAll(box) {
  box.addEventListener('change', () => {
    for (const item of document.querySelectorAll(`input[name="${box.dataset.selectAll}"]`)) /** @type {HTMLInputElement} */ (item).checked = box.checked
  })
}

const live = document.querySelector('table[data-stream]')
if (live) liveList(/** @type {HTMLTableElement} */ (live))
const main = document.querySelector('main[data-refresh]')
if (main) refresh(/** @type {HTMLElement} */ (main))
for (const box of document.querySelectorAll('input[data-select-all]')) selectAll(/** @type {HTMLInputElement} */ (box))
