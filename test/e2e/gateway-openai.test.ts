// The OpenAI-compatible gateway of one real node (issue 18), driven by the official `openai` npm
// client: models list, chat and legacy completions, streaming with usage, JSON-schema output that
// parses and validates, errors as the client's typed exceptions, a client that aborts mid-stream,
// 8 concurrent streams, and receipts that verify. Real libp2p, engine, ONNX Runtime, LevelDB.
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { type Receipt, verifyReceipt } from '../../src/protocols/infer/receipt.ts'
import { type Fixtures, makeFixtures, serving, startNode, until } from './infer-fixture.ts'

const root = await mkdtemp(join(tmpdir(), 'gateway-e2e-'))
let fx: Fixtures
let node: OpenLoraNode
let openai: OpenAI
let base = ''
let model = ''
let cid = ''

interface Ext {
  openlora: { receipt: Receipt; node: { peerId: string }; paid: string; jobId: string; attribution: unknown }
}

test.before(async () => {
  fx = await makeFixtures(root, 1)
  node = await startNode(root, 'gw', fx, {
    admin: true,
    price: '1000',
    infer: { maxNewTokens: 256, maxBatch: 8 }
  })
  model = serving(node).models()[0]!.modelId
  cid = (await serving(node).store()!.import(fx.adapterDirs[0]!)).cid
  base = node.services.gateway!.url!
  openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused-on-loopback', maxRetries: 0, timeout: 60_000 })
})

test.after(async () => {
  await node?.stop()
  await rm(root, { recursive: true, force: true })
})

test('the gateway listens on a free loopback port and answers /health', async () => {
  assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/)
  const h = (await (await fetch(`${base}/health`)).json()) as {
    status: string
    peerId: string
    models: string[]
  }
  assert.is(h.status, 'ok')
  assert.is(h.peerId, node.peerId)
  assert.equal(h.models, [model])
})

test('GET /v1/models lists the base model and the adapter with its parent and tiers', async () => {
  const list = await openai.models.list()
  const ids = list.data.map((m) => m.id)
  assert.ok(ids.includes(model), `models: ${ids.join(', ')}`)
  assert.ok(ids.includes(cid))
  const a = list.data.find((m) => m.id === cid) as unknown as {
    parent: string
    root: string
    openlora: { kind: string; local: string; nodes: { peerId: string }[] }
  }
  assert.is(a.parent, model)
  assert.is(a.root, model)
  assert.is(a.openlora.kind, 'adapter')
  assert.is(a.openlora.nodes[0]!.peerId, node.peerId)
})

test('chat completion on an adapter: text, usage and a receipt that verifies', async () => {
  const r = await openai.chat.completions.create({
    model: cid,
    messages: [{ role: 'user', content: 'Say something about the weather.' }],
    max_tokens: 12,
    temperature: 0
  })
  const ext = (r as unknown as Ext).openlora
  assert.is(r.object, 'chat.completion')
  assert.is(r.choices.length, 1)
  assert.type(r.choices[0]!.message.content, 'string')
  assert.ok(['stop', 'length'].includes(r.choices[0]!.finish_reason))
  assert.ok(r.usage!.prompt_tokens > 0)
  assert.is(r.usage!.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens)
  assert.is(ext.receipt.body.outputTokens, r.usage!.completion_tokens)
  assert.is(ext.receipt.body.adapter, cid)
  assert.is(ext.node.peerId, node.peerId)
  // local jobs are free to the operator, even on a node that charges others
  assert.is(ext.paid, '0')
  assert.is(ext.receipt.body.amountDue, '0')
  const v = await verifyReceipt(ext.receipt, { modelId: model, adapter: cid, peerId: node.peerId })
  assert.ok(v.ok, JSON.stringify(v))
})

test('legacy completion with a seed is reproducible; stop strings cut the text', async () => {
  const ask = () =>
    openai.completions.create({
      model,
      prompt: 'Once upon a time',
      max_tokens: 10,
      temperature: 0.9,
      seed: 7
    })
  const [a, b] = [await ask(), await ask()]
  assert.is(a.object, 'text_completion')
  assert.is(a.choices[0]!.text, b.choices[0]!.text)
  assert.ok(a.choices[0]!.text.length > 0)
  const word = a.choices[0]!.text.trim().slice(0, 2)
  if (word.length > 0) {
    const c = await openai.completions.create({
      model,
      prompt: 'Once upon a time',
      max_tokens: 10,
      temperature: 0.9,
      seed: 7,
      stop: [word]
    })
    assert.not.ok(c.choices[0]!.text.includes(word))
    assert.is(c.choices[0]!.finish_reason, 'stop')
  }
})

test('streaming chat: role first, deltas joined equal the text, usage chunk, [DONE]', async () => {
  const stream = await openai.chat.completions.create({
    model,
    messages: [{ role: 'user', content: 'Hello' }],
    max_tokens: 16,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true }
  })
  let text = ''
  let role = ''
  let finish: string | null = null
  let usage: { completion_tokens: number } | undefined
  let ext: Ext['openlora'] | undefined
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage
    const c = chunk.choices[0]
    if (!c) continue
    if (c.delta.role) role = c.delta.role
    text += c.delta.content ?? ''
    if (c.finish_reason) {
      finish = c.finish_reason
      ext = (chunk as unknown as Ext).openlora
    }
  }
  assert.is(role, 'assistant')
  assert.ok(finish !== null)
  assert.ok(usage !== undefined && usage.completion_tokens > 0)
  assert.ok(ext !== undefined, 'the final chunk carries the openlora extension')
  const plain = await openai.chat.completions.create({
    model,
    messages: [{ role: 'user', content: 'Hello' }],
    max_tokens: 16,
    temperature: 0
  })
  assert.is(text, plain.choices[0]!.message.content)
  assert.is(ext!.receipt.body.outputTokens, usage!.completion_tokens)
})

test('streaming legacy completion ends with [DONE] and the same text as without streaming', async () => {
  const res = await fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: 'The sea', max_tokens: 8, temperature: 0, stream: true })
  })
  assert.is(res.headers.get('content-type')?.startsWith('text/event-stream'), true)
  const body = await res.text()
  const events = body.split('\n\n').filter((e) => e.startsWith('data: '))
  assert.is(events[events.length - 1], 'data: [DONE]')
  const text = events
    .slice(0, -1)
    .map((e) => JSON.parse(e.slice(6)) as { choices: { text: string }[] })
    .map((c) => c.choices[0]?.text ?? '')
    .join('')
  const plain = await openai.completions.create({ model, prompt: 'The sea', max_tokens: 8, temperature: 0 })
  assert.is(text, plain.choices[0]!.text)
})

test('errors arrive as the client’s typed exceptions in OpenAI’s shape', async () => {
  try {
    await openai.chat.completions.create({
      model: 'no-such-model',
      messages: [{ role: 'user', content: 'x' }]
    })
    assert.unreachable('unknown model must fail')
  } catch (err) {
    assert.instance(err, OpenAI.NotFoundError)
    assert.is((err as InstanceType<typeof OpenAI.NotFoundError>).code, 'model_not_found')
  }
  try {
    await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }], n: 2 })
    assert.unreachable('n=2 must fail')
  } catch (err) {
    assert.instance(err, OpenAI.BadRequestError)
    assert.is((err as InstanceType<typeof OpenAI.BadRequestError>).param, 'n')
  }
  try {
    await openai.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'x' }],
      temperature: 5
    })
    assert.unreachable('temperature 5 must fail')
  } catch (err) {
    assert.instance(err, OpenAI.BadRequestError)
    assert.is((err as InstanceType<typeof OpenAI.BadRequestError>).param, 'temperature')
  }
  const big = await fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: 'x'.repeat(1_100_000) })
  })
  assert.is(big.status, 413)
  const e = (await big.json()) as { error: { message: string; type: string } }
  assert.match(e.error.message, /1 MiB/)
  const bad = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"model":'
  })
  assert.is(bad.status, 400)
  assert.is(((await bad.json()) as { error: { type: string } }).error.type, 'invalid_request_error')
  // the node keeps serving after bad input
  const ok = await openai.completions.create({ model, prompt: 'still here', max_tokens: 2 })
  assert.is(ok.choices.length, 1)
})

test('response_format json_schema: the output parses and matches the schema', async () => {
  const schema = {
    type: 'object',
    properties: {
      city: { type: 'string', maxLength: 16 },
      temperature: { type: 'number' },
      sunny: { type: 'boolean' },
      tags: { type: 'array', items: { enum: ['warm', 'cold', 'wet'] }, maxItems: 3 }
    },
    required: ['city', 'temperature', 'sunny'],
    additionalProperties: false
  }
  for (const seed of [1, 2]) {
    const r = await openai.chat.completions.create({
      model: cid,
      messages: [{ role: 'user', content: 'The weather as JSON.' }],
      max_tokens: 60,
      temperature: 1,
      seed,
      response_format: { type: 'json_schema', json_schema: { name: 'weather', schema, strict: true } }
    })
    const v = JSON.parse(r.choices[0]!.message.content!) as Record<string, unknown>
    assert.type(v.city, 'string')
    assert.type(v.temperature, 'number')
    assert.type(v.sunny, 'boolean')
    assert.equal(
      Object.keys(v).filter((k) => !['city', 'temperature', 'sunny', 'tags'].includes(k)),
      []
    )
  }
  const obj = await openai.completions.create({
    model,
    prompt: 'JSON:',
    max_tokens: 30,
    temperature: 1,
    seed: 3,
    response_format: { type: 'json_object' }
  } as Parameters<typeof openai.completions.create>[0] & { stream?: false })
  const parsed = JSON.parse(obj.choices[0]!.text) as unknown
  assert.ok(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed))
  try {
    await openai.chat.completions.create({
      model,
      messages: [{ role: 'user', content: 'x' }],
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'p', schema: { type: 'string', pattern: '^a' } }
      }
    })
    assert.unreachable('an unsupported keyword must fail')
  } catch (err) {
    assert.instance(err, OpenAI.BadRequestError)
    assert.is(
      (err as InstanceType<typeof OpenAI.BadRequestError>).param,
      'response_format.json_schema.schema'
    )
    assert.match((err as Error).message, /pattern/)
  }
})

test('a client that aborts mid-stream cancels its job at once', async () => {
  const engine = serving(node).engine!
  const before = engine.metrics().aborted
  const ac = new AbortController()
  const stream = await openai.completions.create(
    { model, prompt: 'A long story', max_tokens: 200, temperature: 0.8, seed: 1, stream: true },
    { signal: ac.signal }
  )
  let got = 0
  try {
    for await (const _chunk of stream) {
      if (++got === 3) ac.abort()
    }
  } catch {}
  await until('the engine ended the aborted job', () => engine.metrics().aborted > before, 10_000)
  assert.ok(engine.metrics().running === 0 || engine.metrics().aborted > before)
  const m = await (await fetch(`${base}/metrics`)).text()
  assert.match(m, /openlora_gateway_cancelled_total 1/)
})

test('8 concurrent streams all finish with their own receipts', async () => {
  const runs = Array.from({ length: 8 }, (_v, i) =>
    (async () => {
      const s = await openai.chat.completions.create({
        model: i % 2 === 0 ? model : cid,
        messages: [{ role: 'user', content: `Question ${i}` }],
        max_tokens: 12,
        temperature: 0.7,
        seed: i,
        stream: true,
        stream_options: { include_usage: true }
      })
      let jobId = ''
      let tokens = 0
      for await (const c of s) {
        if (c.usage) tokens = c.usage.completion_tokens
        if (c.choices[0]?.finish_reason) jobId = (c as unknown as Ext).openlora.jobId
      }
      return { jobId, tokens }
    })()
  )
  const out = await Promise.all(runs)
  assert.is(new Set(out.map((o) => o.jobId)).size, 8)
  for (const o of out) assert.ok(o.tokens > 0)
})

test('load_lora_adapter needs the admin token, then names an adapter a model can use', async () => {
  const body = { lora_name: 'my-style', lora_path: fx.adapterDirs[0]! }
  const anon = await fetch(`${base}/v1/load_lora_adapter`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
  assert.is(anon.status, 401)
  const token = (JSON.parse(readFileSync(join(node.dataDir.path, 'admin.json'), 'utf8')) as { token: string })
    .token
  const res = await fetch(`${base}/v1/load_lora_adapter`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body)
  })
  assert.is(res.status, 200, await res.clone().text())
  assert.is(((await res.json()) as { cid: string }).cid, cid)
  const r = await openai.chat.completions.create({
    model: 'my-style',
    messages: [{ role: 'user', content: 'hi' }],
    max_tokens: 4
  })
  assert.is((r as unknown as Ext).openlora.receipt.body.adapter, cid)
  const listed = (await openai.models.list()).data.find((m) => m.id === cid) as unknown as {
    openlora: { aliases: string[] }
  }
  assert.equal(listed.openlora.aliases, ['my-style'])
})

test('unload_lora_adapter by name removes the adapter and its name', async () => {
  const token = (JSON.parse(readFileSync(join(node.dataDir.path, 'admin.json'), 'utf8')) as { token: string })
    .token
  const res = await fetch(`${base}/v1/unload_lora_adapter`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ lora_name: 'my-style' })
  })
  assert.is(res.status, 200, await res.clone().text())
  assert.equal(await res.json(), { cid, removed: true })
  const ids = (await openai.models.list()).data.map((m) => m.id)
  assert.not.ok(ids.includes(cid))
  try {
    await openai.chat.completions.create({
      model: 'my-style',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 2
    })
    assert.unreachable('an unloaded name must be unknown')
  } catch (err) {
    assert.instance(err, OpenAI.NotFoundError)
  }
})

test('/openapi.json documents the routes and /docs serves a page', async () => {
  const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { paths: Record<string, unknown> }
  for (const p of ['/v1/chat/completions', '/v1/completions', '/v1/models', '/health'])
    assert.ok(doc.paths[p], p)
  const docs = await fetch(`${base}/docs`)
  assert.is(docs.status, 200)
})

test.run()
