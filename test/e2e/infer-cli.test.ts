// The user's path through the CLI against a real node: `adapter add` (node stopped, then through
// the running node's admin endpoint, refusals included), `adapter list` (live tiers from the
// running node), `infer --via … --out`, `verify` of that file and of a
// tampered copy, and a typed refusal printed with its code.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { addrOf, type Fixtures, makeFixtures, runCli, serving, startNode } from './infer-fixture.ts'

const root = await mkdtemp(join(tmpdir(), 'infer-cli-'))
let fx: Fixtures
let node: OpenLoraNode | undefined

const cli = runCli

test.before(async () => {
  fx = await makeFixtures(root, 2)
})

test.after(async () => {
  await node?.stop()
  await rm(root, { recursive: true, force: true })
})

test('adapter add, adapter list, infer, verify', async () => {
  const dataDir = join(root, 'cli-node')
  const added = await cli(
    'adapter',
    'add',
    fx.adapterDirs[0]!,
    '--data-dir',
    dataDir,
    '--model',
    fx.modelDir,
    '--json'
  )
  assert.is(added.code, 0, added.err)
  const { cid, added: isNew } = JSON.parse(added.out)
  assert.ok(isNew)
  assert.match(cid, /^bafyrei/)

  node = await startNode(root, 'cli-node', fx, { admin: true })
  const model = serving(node).models()[0]!.modelId
  await serving(node).store()!.ensure(cid)
  const listed = await cli('adapter', 'list', '--data-dir', dataDir, '--json')
  assert.is(listed.code, 0, listed.err)
  const list = JSON.parse(listed.out)
  assert.is(list.source, 'running node')
  assert.equal(
    list.adapters.map((a: { cid: string; tier: string }) => [a.cid, a.tier]),
    [[cid, 'hot']]
  )

  // a second adapter while the node runs: the node imports it and serves it at once
  const live = await cli('adapter', 'add', fx.adapterDirs[1]!, '--data-dir', dataDir, '--json')
  assert.is(live.code, 0, live.err)
  const second = JSON.parse(live.out)
  assert.equal([second.added, second.model], [true, model])
  assert.ok(await serving(node).store()!.has(second.cid))
  const again = await cli('adapter', 'add', fx.adapterDirs[1]!, '--data-dir', dataDir)
  assert.is(again.code, 0, again.err)
  assert.match(again.out, /already present/)
  // refusals come from the node, named, and leave it running
  const notAdapter = await cli('adapter', 'add', fx.modelDir, '--data-dir', dataDir)
  assert.is(notAdapter.code, 1)
  assert.match(notAdapter.err, /adapter_config\.json/)
  const otherModel = await cli(
    'adapter',
    'add',
    fx.adapterDirs[1]!,
    '--data-dir',
    dataDir,
    '--model',
    'no-such-model'
  )
  assert.is(otherModel.code, 1)
  assert.match(otherModel.err, /model no-such-model is not served here/)

  const file = join(root, 'result.json')
  const via = addrOf(node)
  const run = await cli(
    'infer',
    '--via',
    via,
    '--model',
    model,
    '--adapter',
    cid,
    '--prompt-ids',
    '1,2,3,4',
    '--max-tokens',
    '6',
    '--out',
    file
  )
  assert.is(run.code, 0, run.err)
  assert.match(run.out, /receipt\s+verified/)
  assert.match(run.out, new RegExp(`served by ${node.peerId}`))
  // the adapter added to the running node serves at once, and the receipt names it
  const withLive = await cli(
    'infer',
    '--via',
    via,
    '--model',
    model,
    '--adapter',
    second.cid,
    '--prompt-ids',
    '5,6',
    '--max-tokens',
    '3',
    '--json'
  )
  assert.is(withLive.code, 0, withLive.err)
  const liveJob = JSON.parse(withLive.out)
  assert.is(liveJob.receipt.body.adapter, second.cid)
  assert.ok(liveJob.verification.ok)

  const ok = await cli('verify', file)
  assert.is(ok.code, 0, ok.out)
  assert.match(ok.out, /receipt OK/)
  const doc = JSON.parse(await readFile(file, 'utf8'))
  doc.outputIds[0] = (doc.outputIds[0] + 1) % 500
  await writeFile(file, JSON.stringify(doc))
  const bad = await cli('verify', file, '--json')
  assert.is(bad.code, 1)
  assert.equal(JSON.parse(bad.out).field, 'outputHash')

  const messages = join(root, 'messages.json')
  await writeFile(messages, JSON.stringify([{ role: 'user', content: 'hello there' }]))
  const chat = await cli(
    'infer',
    '--via',
    via,
    '--model',
    model,
    '--messages',
    messages,
    '--max-tokens',
    '4',
    '--json'
  )
  assert.is(chat.code, 0, chat.err)
  const answer = JSON.parse(chat.out)
  assert.ok(answer.verification.ok)
  assert.ok(answer.promptIds.length > 3, 'the chat template wrapped the message')

  const refused = await cli('infer', '--via', via, '--model', 'no-such-model', '--prompt', 'hi')
  assert.is(refused.code, 1)
  assert.match(refused.err, /MODEL_NOT_FOUND/)
})

test.run()
