// A bare node (no model, no chain, no peers, no datanets) in a real browser: every page loads and
// says what to do instead of showing an empty table. Screenshots go to test-output/empty-*.png.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { type Fixtures, startNode } from '../e2e/infer-fixture.ts'
import { jsErrors, launch, newPage, screenshot } from './browser.ts'

const root = await mkdtemp(join(tmpdir(), 'ui-empty-'))
let node: OpenLoraNode
let browser: Browser | undefined
let page: Page

test.before(async () => {
  // serves nothing, so the fixture's model and cache are never read
  const fx: Fixtures = { modelDir: join(root, 'none'), cacheDir: join(root, 'cache'), adapterDirs: [] }
  node = await startNode(root, 'bare', fx, { serve: false })
  browser = await launch()
  page = await newPage(browser)
})

test.after(async () => {
  await browser?.close().catch(() => {})
  await node?.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

const pages: [string, RegExp, RegExp][] = [
  ['overview', /This node serves no model/, /infer\.models/],
  ['network', /No peers yet/, /openlora start --bootstrap \/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3/],
  ['adapters', /No adapters in this node’s stores/, /openlora adapter add DIR/],
  ['jobs', /No jobs yet/, /\/v1/],
  ['earnings', /This node runs no chain/, /chain\.preset/],
  ['datanets', /No datanets on this node/, /openlora datanet create/],
  ['playground', /No model on this node or its peers/, /--bootstrap ADDR/],
  ['factory', /This node does not train adapters/, /--set training\.offer=true/]
]

for (const [hash, title, hint] of pages)
  test(`${hash}: an empty state that says what to do`, async () => {
    await page.goto(`${node.services.gateway!.url!}/ui/#/${hash}`)
    const box = page.locator('.empty').filter({ hasText: title })
    await box.waitFor()
    assert.match((await box.textContent()) ?? '', hint)
    await screenshot(page, `empty-${hash}`)
  })

test('no page threw or logged an error', () => {
  assert.equal(jsErrors(page), [])
})

test.run()
