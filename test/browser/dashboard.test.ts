// The dashboard in a real browser (Debian chromium through playwright-core) against `openlora
// start --demo` run as a user runs it (a child process: DEMO model and adapter, a datanet, its own
// anvil). The banner names the dashboard URL; every page loads and shows the node's live data; the
// playground streams an answer whose datanet spans are highlighted and whose receipt verifies; a
// job sent while the Jobs page is open appears without a reload and verifies. Screenshots of each
// page go to test-output/.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Browser, Page } from 'playwright-core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DEMO_CONTRIBUTORS, DEMO_PROMPT, DEMO_RECORDS } from '../../src/node/demo-data.ts'
import { jsErrors, launch, newPage, screenshot } from './browser.ts'

const CLI = 'src/node/cli/main.ts'
const dir = mkdtempSync(join(tmpdir(), 'openlora-ui-'))
let child: ChildProcess | undefined
let browser: Browser | undefined
let page: Page
let dashboard = ''
let gateway = ''
let peerId = ''
let adapter = ''
const banner: string[] = []

test.before(async () => {
  child = spawn(
    process.execPath,
    [
      CLI,
      'start',
      '--demo',
      '--data-dir',
      dir,
      '--gateway-port',
      '0',
      '--no-mdns',
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--log-level',
      'warn'
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] }
  )
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no banner within 120 s:\n${banner.join('\n')}`)),
      120_000
    )
    child!.on('exit', (code) =>
      reject(new Error(`openlora start exited with ${code}:\n${banner.join('\n')}`))
    )
    createInterface({ input: child!.stdout! }).on('line', (line) => {
      banner.push(line)
      if (!line.startsWith('OpenAI API:')) return
      clearTimeout(timer)
      resolve()
    })
  })
  dashboard = banner.find((l) => l.startsWith('Dashboard:'))?.split(/\s+/)[1] ?? ''
  gateway = dashboard.replace(/\/ui\/$/, '')
  peerId = banner
    .find((l) => l.includes('peer id'))!
    .trim()
    .split(/\s+/)
    .pop()!
  adapter = banner
    .find((l) => l.trim().startsWith('adapter'))!
    .trim()
    .split(/\s+/)[1]!
  browser = await launch()
  page = await newPage(browser)
})

test.after(async () => {
  await browser?.close().catch(() => {})
  if (child && child.exitCode === null) {
    child.kill('SIGINT')
    await new Promise((r) => {
      child!.once('exit', r)
      setTimeout(r, 8_000)
    })
    if (child.exitCode === null) child.kill('SIGKILL')
  }
  rmSync(dir, { recursive: true, force: true })
})

async function open(hash: string): Promise<void> {
  await page.goto(`${dashboard}#/${hash}`)
  await page.getByRole('heading', { level: 1 }).first().waitFor()
}

test('npm start prints the dashboard URL, and it serves the app', async () => {
  assert.match(dashboard, /^http:\/\/127\.0\.0\.1:\d+\/ui\/$/, banner.join('\n'))
  const res = await fetch(dashboard)
  assert.is(res.status, 200)
  assert.match(await res.text(), /<nav aria-label="Pages"/)
})

test('Overview: identity, reachability, hardware and the served model, live', async () => {
  await open('overview')
  await page.getByRole('heading', { name: 'Overview' }).waitFor()
  const shown = await page.getByTestId('peer-id').locator('span').getAttribute('title')
  assert.ok(shown?.startsWith(peerId), `peer id shown: ${shown}`)
  await page.getByText('openlora-demo/kjv-base').first().waitFor()
  await page.getByText('local anvil').waitFor()
  await page.getByRole('heading', { name: 'Hardware' }).waitFor()
  // the uptime moves without a reload (the live stream's ticks)
  const before = await page.locator('.stat .value').first().textContent()
  await page.waitForFunction(
    `document.querySelector('.stat .value')?.textContent !== ${JSON.stringify(before)}`,
    undefined,
    {
      timeout: 10_000
    }
  )
  await page.locator('#live.on').waitFor()
  await screenshot(page, 'overview')
})

test('Adapters: the demo adapter, hot after its first use, with provenance and on-chain registration', async () => {
  await open('adapters')
  const row = page.getByRole('row').filter({ hasText: adapter.slice(0, 8) })
  await row.waitFor()
  await row.getByText('registered', { exact: true }).waitFor()
  await row.getByText(/v1 · 100%/).waitFor()
  await screenshot(page, 'adapters')
})

test('Datanets: the demo datanet, its version root matching the chain, its contributor', async () => {
  await open('datanets')
  await page.getByRole('heading', { name: /demo datanet/ }).waitFor()
  await page.getByText('on-chain root matches').waitFor()
  // each demo contributor's share of the datanet's text, as the page computes it
  const bytes = (name: string) =>
    DEMO_RECORDS.filter((r) => r.contributor === name).reduce((n, r) => n + Buffer.byteLength(r.text), 0)
  const total = Object.keys(DEMO_CONTRIBUTORS).reduce((n, c) => n + bytes(c), 0)
  const contributors = page.getByRole('table', { name: /Contributors of/ })
  for (const c of Object.keys(DEMO_CONTRIBUTORS))
    await contributors.getByText(`${((100 * bytes(c)) / total).toFixed(1)}%`).waitFor()
  await screenshot(page, 'datanets')
})

test('Network: a lone node says how to add peers', async () => {
  await open('network')
  await page.getByText('No peers yet').waitFor()
  await page.getByText(`--bootstrap`).waitFor()
  await screenshot(page, 'network-empty')
})

test('Playground: the answer streams, its datanet spans are highlighted, the receipt verifies', async () => {
  await open('playground')
  const model = page.getByRole('combobox', { name: 'Model or adapter' })
  await model.waitFor()
  assert.match((await model.locator('option:checked').textContent()) ?? '', /^adapter /)
  // completion mode with the demo prompt: the opening of a datanet passage the adapter continues
  await page.getByRole('combobox', { name: 'Mode', exact: true }).selectOption('completion')
  await page.getByRole('textbox', { name: 'Prompt' }).fill(DEMO_PROMPT)
  // count the answer's text changes while it streams (one per token, not one at the end)
  await page.evaluate(`
    window.changes = 0
    new MutationObserver(() => window.changes++).observe(document.getElementById('view'), { subtree: true, characterData: true, childList: true })
  `)
  await page.getByRole('button', { name: 'Send' }).click()
  await page.getByTestId('receipt').getByText('✓ verified').waitFor({ timeout: 60_000 })
  const changes = (await page.evaluate('window.changes')) as number
  assert.ok(changes > 10, `the answer arrived in pieces (${changes} DOM changes)`)
  const marks = page.getByTestId('answer').locator('mark.span')
  await marks.first().waitFor()
  assert.ok((await marks.count()) >= 1)
  await page
    .getByTestId('span-count')
    .getByText(/highlighted/)
    .waitFor()
  await page.getByTestId('attribution').getByText('100%').first().waitFor()
  await screenshot(page, 'playground')
})

test('Jobs: a job appears live while the page is open, and its receipt verifies in the page', async () => {
  await open('jobs')
  await page.getByText(/^The last \d+ jobs/).waitFor()
  const rows = page.getByRole('table', { name: 'Jobs' }).locator('tbody tr')
  const before = await rows.count()
  const res = await fetch(`${gateway}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: adapter,
      prompt: 'A job sent while the page is open',
      max_tokens: 12,
      temperature: 0
    })
  })
  assert.is(res.status, 200)
  const jobId = ((await res.json()) as { openlora: { jobId: string } }).openlora.jobId
  await page.waitForFunction(
    `document.querySelectorAll('table[aria-label="Jobs"] tbody tr').length > ${before}`
  )
  const row = rows.filter({ hasText: jobId.slice(0, 10) })
  await row.waitFor()
  await row.getByRole('button', { name: 'Verify' }).click()
  await row.getByText('✓ verified').waitFor()
  await screenshot(page, 'jobs')
})

test('Earnings: totals, roles and the chart render on the local chain', async () => {
  await open('earnings')
  await page.getByText('Withdrawable').waitFor()
  await page.getByRole('table', { name: 'Earnings by role' }).waitFor()
  await page.getByTestId('earnings-chart').locator('canvas').waitFor()
  const size = await page.getByTestId('earnings-chart').locator('canvas').boundingBox()
  assert.ok(size && size.width > 200 && size.height > 100, `chart size ${JSON.stringify(size)}`)
  await screenshot(page, 'earnings-single-node')
  assert.equal(jsErrors(page), [], 'no page threw or logged an error')
})

test.run()
