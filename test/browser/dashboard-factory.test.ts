// The ModelFactory page in a real browser (Debian chromium through playwright-core) against real
// nodes: one training node with a local anvil and two datanets registered on it, one training node
// without a chain. On the first, a person gives the admin token the page asks for, picks the model,
// both datanets and the quick preset with fewer steps, starts, watches the loss chart grow while the
// job runs, opens the adapter in the Playground (preselected; the answer verifies and its
// attribution names both datanets), and registers it on-chain (the chain then lists exactly those
// datanets, half each). On the second, Register says the node has no chain. Screenshots go to
// test-output/factory*.png.
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { cidDigest } from '../../src/crypto/cid.ts'
import { type Hex, toHex } from '../../src/crypto/hash.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { type Fixtures, makeFixtures, startNode } from '../e2e/infer-fixture.ts'
import { jsErrors, launch, newPage, screenshot as save } from './browser.ts'

const root = await mkdtemp(join(tmpdir(), 'ui-factory-'))
let fx: Fixtures
let trainer: OpenLoraNode
let noChain: OpenLoraNode
let browser: Browser | undefined
let page: Page
const datanets: { id: string; name: string }[] = []
/** enough steps that the job runs across several polls of the page (800 ms), even on a fast machine */
const STEPS = 120

async function addDatanet(node: OpenLoraNode, name: string, texts: string[]): Promise<string> {
  const store = node.services.attribution!.store
  const contributor = node.identity.operator.address
  const dn = await store.createDatanet({ name, owner: contributor })
  for (const text of texts) await store.contribute(dn.id, { text, contributor })
  await store.publish(dn.id)
  return dn.id
}

test.before(async () => {
  fx = await makeFixtures(root, 0)
  trainer = await startNode(root, 'trainer', fx, {
    admin: true,
    price: '0',
    config: { training: { offer: true }, chain: { preset: 'local' } }
  })
  noChain = await startNode(root, 'nochain', fx, {
    admin: true,
    price: '0',
    config: { training: { offer: true } }
  })
  for (const [name, texts] of [
    ['proverbs', ['a stitch in time saves nine', 'knowledge is power', 'better late than never']],
    ['sea log', ['the lamp burned from four in the afternoon', 'gulls sat on the iron rail']]
  ] as const) {
    const id = await addDatanet(trainer, name, [...texts])
    datanets.push({ id, name })
    // on-chain by the operator (funded on the local chain), so a trained adapter may declare it
    const chain = trainer.services.chain!.client
    const v = await trainer.services.attribution!.store.getVersion(id, 1)
    await chain.createDatanet(id as Hex, `0x${'00'.repeat(32)}`)
    await chain.appendDatanetVersion(id as Hex, v.root as Hex)
  }
  await addDatanet(noChain, 'notes', ['one record is enough to train on'])
  browser = await launch()
  page = await newPage(browser)
})

test.after(async () => {
  await browser?.close().catch(() => {})
  await trainer?.stop().catch(() => {})
  await noChain?.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

/** from the top: the sticky nav bar would sit in the middle of a full-page shot taken scrolled */
async function screenshot(p: Page, name: string): Promise<void> {
  await p.evaluate('window.scrollTo(0, 0)')
  await save(p, name)
}

const adminToken = (name: string) =>
  JSON.parse(readFileSync(join(root, name, 'admin.json'), 'utf8')).token as string

/** Opens the page; the job list is an admin route, so the page asks for the token once. */
async function openFactory(node: OpenLoraNode, name: string): Promise<void> {
  await page.goto(`${node.services.gateway!.url}/ui/#/factory`)
  await page.getByRole('heading', { name: 'ModelFactory' }).waitFor()
  await page.getByText('This needs the node’s admin token').waitFor()
  await page.locator('#apikey').fill(adminToken(name))
  await page.getByRole('button', { name: 'Use key' }).click()
  await page.getByText('No training job yet').waitFor()
}

test('Train: pick model, datanets and a preset; the loss chart grows while the job runs', async () => {
  await openFactory(trainer, 'trainer')
  const form = page.getByRole('form', { name: 'New training job' })
  const model = form.getByRole('combobox', { name: 'Base model' })
  assert.match((await model.locator('option:checked').textContent()) ?? '', /\(llama\)/)
  await form.getByRole('checkbox', { name: /proverbs/ }).waitFor()
  assert.is(await form.locator('input[name=datanet]:checked').count(), 1, 'one datanet is preselected')
  await form.getByRole('checkbox', { name: /proverbs/ }).check()
  await form.getByRole('checkbox', { name: /sea log/ }).check()
  assert.equal(await form.getByText('on-chain', { exact: true }).count(), 2)
  // the quick preset fills the fields; changing one makes the settings custom
  await form.getByRole('combobox', { name: 'Preset' }).selectOption('standard')
  assert.is(await form.getByRole('spinbutton', { name: 'Steps' }).inputValue(), '200')
  await form.getByRole('combobox', { name: 'Preset' }).selectOption('quick')
  assert.is(await form.getByRole('spinbutton', { name: 'Rank' }).inputValue(), '8')
  assert.ok(await form.getByRole('checkbox', { name: 'v_proj' }).isChecked())
  assert.ok(!(await form.getByRole('checkbox', { name: 'o_proj' }).isChecked()))
  await form.getByRole('spinbutton', { name: 'Steps' }).fill(String(STEPS))
  assert.is(await form.getByRole('combobox', { name: 'Preset' }).inputValue(), 'custom')
  // QLoRA-style: train against the base as an int4 node serves it (docs/TRAINING.md)
  await form.getByText('More settings').click()
  await form.getByRole('combobox', { name: 'Base weights' }).selectOption('int4')
  // every progress line the page shows, to see it move while the job runs
  await page.evaluate(`
    window.seen = []
    new MutationObserver(() => {
      const p = document.querySelector('[data-testid=job-progress]')
      if (p && window.seen.at(-1) !== p.textContent) window.seen.push(p.textContent)
    }).observe(document.getElementById('view'), { subtree: true, childList: true, characterData: true })
  `)
  await form.getByRole('button', { name: 'Start training' }).click()
  await page.getByTestId('loss-chart').locator('canvas').waitFor()
  await page.getByTestId('job-progress').getByText('done').waitFor({ timeout: 120_000 })
  const seen = (await page.evaluate('window.seen')) as string[]
  const during = seen.filter((t) => t.startsWith('running') && !t.includes(` ${STEPS} of `))
  assert.ok(during.length >= 2, `progress moved while running: ${JSON.stringify(seen)}`)
  assert.match(seen.at(-1)!, new RegExp(`^done step ${STEPS} of ${STEPS} · loss \\d`))
  const size = await page.getByTestId('loss-chart').locator('canvas').boundingBox()
  assert.ok(size && size.width > 200 && size.height > 100, `chart size ${JSON.stringify(size)}`)
  const row = page.getByRole('table', { name: 'Training jobs' }).locator('tbody tr')
  assert.is(await row.count(), 1)
  // in the order the page lists them (the node's datanet order)
  await row.getByText(/^(proverbs, sea log|sea log, proverbs)$/).waitFor()
  await row.getByText(`${STEPS} / ${STEPS}`).waitFor()
  const jobs = await fetch(`${trainer.services.gateway!.url}/v1/training/jobs`, {
    headers: { authorization: `Bearer ${adminToken('trainer')}` }
  })
  const [job] = (
    (await jobs.json()) as {
      data: {
        request: { baseFormat?: string }
        record: { body: { baseModel: { format?: string } } } | null
      }[]
    }
  ).data
  assert.is(job?.request.baseFormat, 'int4', 'the page sent the base format')
  assert.is(job?.record?.body.baseModel.format, 'int4', 'the signed record states it')
  await screenshot(page, 'factory')
})

test('Try in playground: the trained adapter is served, preselected, and credits both datanets', async () => {
  const cid = (await page.getByTestId('adapter-cid').locator('span').getAttribute('title'))!.split(' ')[0]!
  assert.match(cid, /^b/)
  await page.getByRole('link', { name: 'Try in playground' }).click()
  const model = page.getByRole('combobox', { name: 'Model or adapter' })
  await model.waitFor()
  assert.is(await model.inputValue(), cid)
  await page.getByRole('combobox', { name: 'Mode', exact: true }).selectOption('completion')
  await page.getByRole('spinbutton').first().fill('8')
  await page.getByRole('button', { name: 'Send' }).click()
  await page.getByTestId('receipt').getByText('✓ verified').waitFor({ timeout: 60_000 })
  const attribution = page.getByTestId('attribution')
  for (const d of datanets) await attribution.locator(`[title^="${d.id}"]`).waitFor()
  await screenshot(page, 'factory-playground')
})

test('Register on-chain: the chain lists exactly the datanets of the training record', async () => {
  await page.goto(`${trainer.services.gateway!.url}/ui/#/factory`)
  const cid = (await page.getByTestId('adapter-cid').locator('span').getAttribute('title'))!.split(' ')[0]!
  await page.getByRole('button', { name: 'Register on-chain' }).click()
  await page
    .getByTestId('registration')
    .getByText(/✓ Registered on-chain/)
    .waitFor({ timeout: 60_000 })
  await page
    .getByTestId('registration')
    .getByText(/declaring 2 datanets \(50% \/ 50%\)/)
    .waitFor()
  assert.ok(await page.getByRole('button', { name: 'Register on-chain' }).isDisabled())
  const onChain = await trainer.services.chain!.client.getAdapter(toHex(cidDigest(cid)) as Hex)
  assert.equal(
    onChain.datanets.map((d) => d.toLowerCase()).sort(),
    datanets.map((d) => d.id.toLowerCase()).sort()
  )
  assert.equal([...onChain.weightsBps], [5000, 5000])
  assert.is(onChain.owner.toLowerCase(), trainer.identity.operator.address.toLowerCase())
  await page.getByRole('table', { name: 'Training jobs' }).getByText('on-chain').waitFor()
  await screenshot(page, 'factory-registered')
})

test('a node without a chain: Register says so, and what to do', async () => {
  await openFactory(noChain, 'nochain')
  const form = page.getByRole('form', { name: 'New training job' })
  await form.getByRole('spinbutton', { name: 'Steps' }).fill('2')
  await form.getByRole('button', { name: 'Start training' }).click()
  await page.getByTestId('job-progress').getByText('done').waitFor({ timeout: 60_000 })
  await page.getByRole('button', { name: 'Register on-chain' }).click()
  const alert = page.getByTestId('registration').getByRole('alert')
  await alert.waitFor()
  assert.match((await alert.textContent()) ?? '', /no chain configured.*chain\.preset/)
  assert.ok(await page.getByRole('button', { name: 'Register on-chain' }).isEnabled())
  await screenshot(page, 'factory-no-chain')
})

test('no page threw or logged an error', () => {
  // the browser logs each refused request (the 401 that makes the page ask for the admin token,
  // the 400 of Register without a chain); those answers are what the tests above check
  const refused = /Failed to load resource: the server responded with a status of (400|401)/
  assert.equal(
    jsErrors(page).filter((e) => !refused.test(e)),
    []
  )
})

test.run()
