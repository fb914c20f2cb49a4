// Gateway API keys (issue 18): with gateway.apiKeys on, requests need a key made by `openlora
// gateway keys add` (401 as the openai client's AuthenticationError otherwise), a revoked key
// stops working without a restart, a key's rate limit answers 429 with Retry-After, and a node
// refuses to bind its gateway beyond loopback while no key exists.
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { type Fixtures, makeFixtures, runCli, serving, startNode } from './infer-fixture.ts'

const root = await mkdtemp(join(tmpdir(), 'gateway-keys-'))
let fx: Fixtures
let node: OpenLoraNode
let base = ''
let model = ''

test.before(async () => {
  fx = await makeFixtures(root, 0)
  node = await startNode(root, 'k', fx, { config: { 'gateway.apiKeys': true } })
  base = node.services.gateway!.url!
  model = serving(node).models()[0]!.modelId
})

test.after(async () => {
  await node?.stop()
  await rm(root, { recursive: true, force: true })
})

const client = (apiKey: string) => new OpenAI({ baseURL: `${base}/v1`, apiKey, maxRetries: 0 })
const dir = () => join(root, 'k')

test('without a valid key: 401 AuthenticationError; /health stays open', async () => {
  try {
    await client('olk-nope').models.list()
    assert.unreachable('a bad key must fail')
  } catch (err) {
    assert.instance(err, OpenAI.AuthenticationError)
    assert.is((err as InstanceType<typeof OpenAI.AuthenticationError>).code, 'invalid_api_key')
  }
  const h = await fetch(`${base}/health`)
  assert.is(h.status, 200)
})

test('a key from `openlora gateway keys add` works until it is revoked', async () => {
  const add = await runCli('gateway', 'keys', 'add', 'app', '--data-dir', dir(), '--json')
  assert.is(add.code, 0, add.err)
  const { key, id } = JSON.parse(add.out) as { key: string; id: string }
  const r = await client(key).completions.create({ model, prompt: 'hi', max_tokens: 3 })
  assert.is(r.choices.length, 1)
  const list = await runCli('gateway', 'keys', 'list', '--data-dir', dir(), '--json')
  const keys = JSON.parse(list.out) as { id: string; name: string; hash?: string }[]
  assert.equal(
    keys.map((k) => k.name),
    ['app']
  )
  assert.is(keys[0]!.hash, undefined, 'the list never shows hashes')
  assert.not.ok(list.out.includes(key))
  const rev = await runCli('gateway', 'keys', 'revoke', id, '--data-dir', dir())
  assert.is(rev.code, 0, rev.err)
  try {
    await client(key).models.list()
    assert.unreachable('a revoked key must fail')
  } catch (err) {
    assert.instance(err, OpenAI.AuthenticationError)
  }
})

test('a key over its rate gets 429 RateLimitError with Retry-After', async () => {
  const add = await runCli('gateway', 'keys', 'add', 'slow', '--rate', '2', '--data-dir', dir(), '--json')
  const { key } = JSON.parse(add.out) as { key: string }
  const c = client(key)
  await c.models.list()
  await c.models.list()
  try {
    await c.models.list()
    assert.unreachable('the third request in a minute must fail')
  } catch (err) {
    assert.instance(err, OpenAI.RateLimitError)
    const retry = Number((err as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after'))
    assert.ok(retry >= 1 && retry <= 60, `retry-after ${retry}`)
  }
})

test('beyond gateway.maxConcurrentStreams a request gets 503 with Retry-After; the running one finishes', async () => {
  // decode on ORT's kernels: the native engine finishes the first job's 120 tokens on the tiny
  // fixture before the second request arrives, and this test is about the gateway's limit
  const n = await startNode(root, 'limited', fx, {
    config: { 'gateway.maxConcurrentStreams': 1, 'infer.decodeKernels': 'ort' }
  })
  try {
    const c = new OpenAI({ baseURL: `${n.services.gateway!.url!}/v1`, apiKey: 'x', maxRetries: 0 })
    // the second request goes out once the first has streamed a token (so it holds the one stream
    // slot), not after a fixed delay: under CI load the first was not yet admitted at 30 ms
    const first = await c.completions.create({
      model,
      prompt: 'long',
      max_tokens: 120,
      temperature: 0.8,
      seed: 1,
      stream: true
    })
    const chunks = first[Symbol.asyncIterator]()
    let text = ((await chunks.next()).value?.choices[0]?.text as string | undefined) ?? ''
    try {
      await c.completions.create({ model, prompt: 'second', max_tokens: 4 })
      assert.unreachable('the second job must be refused')
    } catch (err) {
      assert.instance(err, OpenAI.InternalServerError)
      assert.is((err as InstanceType<typeof OpenAI.APIError>).status, 503)
      assert.is((err as InstanceType<typeof OpenAI.APIError>).code, 'too_many_streams')
      assert.ok(Number((err as InstanceType<typeof OpenAI.APIError>).headers?.get('retry-after')) >= 1)
    }
    for (let r = await chunks.next(); !r.done; r = await chunks.next()) text += r.value.choices[0]?.text ?? ''
    assert.ok(text.length > 0)
  } finally {
    await n.stop()
  }
})

test('a gateway bound beyond loopback without keys is refused at start', async () => {
  try {
    const n = await startNode(root, 'open', fx, { serve: false, config: { 'gateway.host': '0.0.0.0' } })
    await n.stop()
    assert.unreachable('the node must refuse to start')
  } catch (err) {
    assert.match((err as Error).message, /not a loopback address and no API key exists/)
  }
})

test('a gateway port in use stops the start with what to do instead', async () => {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const port = (srv.address() as { port: number }).port
  try {
    const n = await startNode(root, 'taken', fx, { serve: false, config: { 'gateway.port': port } })
    await n.stop()
    assert.unreachable('the node must refuse to start')
  } catch (err) {
    assert.match((err as Error).message, /port is in use.*--gateway-port/)
  } finally {
    srv.close()
  }
})

test.run()
