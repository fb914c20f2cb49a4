// The dashboard of a 3-node swarm on one anvil, in a real browser: S and T serve the model and
// charge, G serves nothing and pays from its gateway wallet. G's Network page lists S and T with
// their adverts, live; jobs sent through G's playground run on S or T, paid, and their receipts
// verify in the page; the serving node's Earnings page shows the claim the claimer sent (gas and
// transaction) and charts it. Real libp2p, engine, ONNX Runtime, anvil and chromium.
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { requireService } from '../../src/common/service.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { addrOf, type Fixtures, makeFixtures, startNode, until } from '../e2e/infer-fixture.ts'
import { jsErrors, launch, newPage, screenshot } from './browser.ts'

const OPEN = 10n ** 18n
const PRICE = (OPEN / 1000n).toString()
const root = await mkdtemp(join(tmpdir(), 'ui-swarm-'))
let fx: Fixtures
let s: OpenLoraNode
let t: OpenLoraNode
let g: OpenLoraNode
let browser: Browser | undefined
let page: Page
const servedBy = new Set<string>()

const ui = (n: OpenLoraNode, hash: string) => `${n.services.gateway!.url!}/ui/#/${hash}`

test.before(async () => {
  fx = await makeFixtures(root, 0)
  // minClaim 1 wei: the claimer claims right after a paid job (its interval would be an hour)
  const claimNow = { claimIntervalSec: 3600, minClaim: '1' }
  s = await startNode(root, 's', fx, { price: PRICE, config: { chain: { preset: 'local', ...claimNow } } })
  const ep = JSON.parse(readFileSync(join(root, 's', 'chain.json'), 'utf8'))
  const chain = { rpcUrl: ep.rpcUrl, chainId: ep.chainId, addresses: ep.addresses }
  const local = requireService(s.services, 'chain').localChain!
  t = await startNode(root, 't', fx, {
    price: PRICE,
    bootstrap: [addrOf(s)],
    config: { chain: { ...chain, ...claimNow } }
  })
  // T's operator pays gas for its claims; only S's own chain funded S's operator
  await fetch(ep.rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'anvil_setBalance',
      params: [t.identity.operator.address, `0x${(10n * OPEN).toString(16)}`]
    })
  })
  const keyFile = join(root, 'payer.key')
  await writeFile(keyFile, `${local.privateKeys[3]!}\n`, { mode: 0o600 })
  g = await startNode(root, 'g', fx, {
    serve: false,
    bootstrap: [addrOf(s), addrOf(t)],
    config: { chain, 'gateway.payer': keyFile, 'gateway.maxSpend': OPEN.toString() }
  })
  await until('G sees S and T', () => [s, t].every((n) => g.peerTable.get(n.peerId) !== undefined), 30_000)
  browser = await launch()
  page = await newPage(browser)
})

test.after(async () => {
  await browser?.close().catch(() => {})
  for (const n of [g, t, s]) await n?.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

test('Network (G): both serving peers with their models, prices and live adverts', async () => {
  await page.goto(ui(g, 'network'))
  const table = page.getByRole('table', { name: 'Peers' })
  for (const n of [s, t]) {
    const row = table
      .getByRole('row')
      .filter({ hasText: n.peerId.slice(0, 8) })
      .filter({ hasText: n.peerId.slice(-8) })
    await row.waitFor()
    await row.getByText('live', { exact: true }).waitFor()
    await row.getByText('0.001 OPEN').waitFor()
  }
  await page.getByText(/2 peers known from adverts, 2 live/).waitFor()
  // the table is rebuilt from fresh data on the live ticks (adverts arrive every second)
  await page.evaluate(`document.querySelector('table[aria-label="Peers"]').dataset.old = '1'`)
  await page.waitForFunction(
    `document.querySelector('table[aria-label="Peers"]')?.dataset.old === undefined`,
    undefined,
    {
      timeout: 15_000
    }
  )
  await screenshot(page, 'network')
})

test('Playground (G): a paid job on a peer streams, with a verified receipt', async () => {
  await page.goto(ui(g, 'playground'))
  const model = page.getByRole('combobox', { name: 'Model or adapter' })
  await model.waitFor()
  assert.match((await model.locator('option:checked').textContent()) ?? '', /2 nodes · from 0.001 OPEN\/1k/)
  await page.getByRole('textbox', { name: 'Prompt' }).fill('Pay a peer for this answer')
  for (let i = 0; i < 2; i++) {
    await page.getByRole('button', { name: 'Send' }).click()
    await page.getByTestId('receipt').getByText('✓ verified').waitFor({ timeout: 60_000 })
    await page.getByText(/· paid 0\.\d+ OPEN ·/).waitFor()
  }
  await screenshot(page, 'playground-paid')
})

test('Jobs (G): the forwarded paid jobs, each receipt verifies', async () => {
  await page.goto(ui(g, 'jobs'))
  const rows = page.getByRole('table', { name: 'Jobs' }).locator('tbody tr')
  await rows.first().waitFor()
  assert.is(await rows.count(), 2)
  for (const row of await rows.all()) {
    await row.getByText('forwarded').waitFor()
    await row.getByRole('button', { name: 'Verify' }).click()
    await row.getByText('✓ verified').waitFor()
  }
  for (const j of requireService(g.services, 'gateway') ? await jobsOf(g) : []) servedBy.add(j.servedBy)
  assert.ok(servedBy.size >= 1)
  await screenshot(page, 'jobs-forwarded')
})

async function jobsOf(n: OpenLoraNode): Promise<{ servedBy: string }[]> {
  const r = await fetch(`${n.services.gateway!.url!}/ui/api/jobs`)
  return ((await r.json()) as { jobs: { servedBy: string }[] }).jobs
}

test('Earnings (serving node): the claim with gas and tx hash, split by role, charted', async () => {
  const claimsOf = async (n: OpenLoraNode) => {
    const r = await fetch(`${n.services.gateway!.url!}/ui/api/earnings`)
    return ((await r.json()) as { claims: unknown[] }).claims.length
  }
  let node: OpenLoraNode | undefined
  await until(
    'a serving node claimed',
    async () => {
      for (const n of [s, t]) if (servedBy.has(n.peerId) && (await claimsOf(n)) > 0) node = n
      return node !== undefined
    },
    90_000
  )
  if (!node) throw new Error('no claim')
  await page.goto(ui(node, 'earnings'))
  const claims = page.getByRole('table', { name: 'Claims' })
  await claims.locator('tbody tr').first().waitFor()
  const row = await claims.locator('tbody tr').first().textContent()
  assert.match(row ?? '', /0x[0-9a-f]{8}…/)
  const roles = page.getByRole('table', { name: 'Earnings by role' })
  assert.not.match(
    (await roles.getByRole('row').filter({ hasText: 'Operator' }).textContent()) ?? '',
    /\b0 OPEN.*\b0 OPEN/
  )
  const canvas = page.getByTestId('earnings-chart').locator('canvas')
  await canvas.waitFor()
  const box = await canvas.boundingBox()
  assert.ok(box && box.width > 300 && box.height > 150, `chart size ${JSON.stringify(box)}`)
  await screenshot(page, 'earnings')
  await page.goto(ui(node, 'overview'))
  await page.getByRole('heading', { name: 'Overview' }).waitFor()
  await page.getByText(/[1-9]\d* direct/).waitFor()
  await screenshot(page, 'overview-swarm')
  assert.equal(jsErrors(page), [], 'no page threw or logged an error')
})

test.run()
