// The engine's scheduling on a real AdapterStore (LevelDB, files) and a toy model behind the
// LoadedModel interface: batching must never change a request's tokens, and rows and slots must
// be freed exactly when requests end.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as tick } from 'node:timers/promises'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { AdapterStore } from '../../src/runtime/adapters/store.ts'
import type { EngineLimits } from '../../src/runtime/engine/config.ts'
import { Engine } from '../../src/runtime/engine/engine.ts'
import type { TokenEvent } from '../../src/runtime/engine/types.ts'
import { type TestAdapter, testAdapterLoader, writeTestAdapter } from './adapter-store-fixture.ts'
import { greedy, ToyModel, toyExpected } from './engine-fixture.ts'

async function setup(opts: { slots?: number; adapters?: number; limits?: Partial<EngineLimits> } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'engine-'))
  const maxBatch = opts.limits?.maxBatch ?? 8
  const model = new ToyModel({ maxBatch, slots: opts.slots ?? 9 })
  const store = new AdapterStore<TestAdapter>(
    { dir: join(dir, 'store') },
    {
      model: { modelId: model.modelId, config: {}, pools: model.pools },
      loadAdapter: testAdapterLoader().load
    }
  )
  await store.start()
  const adapters: { cid: string; name: string }[] = []
  for (let i = 0; i < (opts.adapters ?? 0); i++) {
    const name = `ad${i}`
    adapters.push({ cid: (await store.import(await writeTestAdapter(dir, name))).cid, name })
  }
  const engine = new Engine(
    { limits: { maxBatch, ...opts.limits } },
    { models: [{ model, adapters: store }], sample: (l) => greedy(l) }
  )
  engine.start()
  const close = async () => {
    await engine.stop()
    await store.stop()
    await rm(dir, { recursive: true, force: true })
  }
  return { dir, model, store, engine, adapters, close }
}

async function collect(it: AsyncIterable<TokenEvent>) {
  const tokens: number[] = []
  for await (const ev of it) {
    if (ev.type === 'token') tokens.push(ev.id)
    else return { tokens, done: ev }
  }
  throw new Error('stream ended without a done event')
}

function promptFor(i: number, len = 5 + (i % 7)): number[] {
  return Array.from({ length: len }, (_, k) => 1 + ((i * 7 + k * 3) % 63))
}

test('200 concurrent requests over 50 adapters all complete with the tokens each gives alone', async () => {
  const { model, store, engine, adapters, close } = await setup({ adapters: 50, limits: { maxQueued: 256 } })
  try {
    const reqs = Array.from({ length: 200 }, (_, i) => {
      const a = i % 5 === 0 ? undefined : adapters[(i * 13) % 50]!
      return { prompt: promptFor(i), adapter: a, max: 4 + (i % 9) }
    })
    const results = await Promise.all(
      reqs.map((r) =>
        collect(
          engine.generate({
            model: 'toy',
            adapter: r.adapter?.cid ?? null,
            promptIds: r.prompt,
            params: { maxNewTokens: r.max }
          })
        )
      )
    )
    results.forEach((res, i) => {
      const r = reqs[i]!
      const want = toyExpected(r.prompt, r.adapter?.name, r.max)
      assert.equal(res.tokens, want, `request ${i}`)
      assert.equal(res.done.outputIds, want)
      assert.is(res.done.finishReason, want.length === r.max ? 'length' : 'stop')
      assert.equal(res.done.usage, { promptTokens: r.prompt.length, outputTokens: want.length })
    })
    assert.is(model.slotViolations, 0)
    assert.is(model.rowsInUse, 0)
    assert.ok(
      model.maxRowsInUse >= 4 && model.maxRowsInUse <= 8,
      `rows in use at once: ${model.maxRowsInUse}`
    )
    // rows of different requests shared steps, and prefill rode along with decode rows
    assert.ok(model.stepLog.some((s) => s.prefillRows > 0 && s.decodeRows > 0))
    const s = store.stats()
    assert.is(s.hotPinned, 0)
    assert.ok(s.evictions.hot > 0, 'more adapters than slots: some were evicted')
    const m = engine.metrics()
    assert.is(m.completed, 200)
    assert.is(m.running + m.queued, 0)
  } finally {
    await close()
  }
})

test('a request joins a running batch between decode steps', async () => {
  const { model, engine, close } = await setup()
  try {
    const long = engine.generate({
      model: 'toy',
      promptIds: [5, 6, 7],
      params: { maxNewTokens: 40, stopTokenIds: [] }
    })
    const it = long[Symbol.asyncIterator]()
    for (let i = 0; i < 3; i++) await it.next()
    const stepsBefore = model.stepLog.length
    const short = await collect(
      engine.generate({ model: 'toy', promptIds: [9, 9], params: { maxNewTokens: 2 } })
    )
    assert.ok(short.done.outputIds.length >= 1)
    // the short request finished while the long one was still decoding
    const rest = await collect({ [Symbol.asyncIterator]: () => it })
    assert.ok(rest.done.outputIds.length > 3)
    const joined = model.stepLog.slice(stepsBefore).find((s) => s.prefillRows === 1 && s.decodeRows === 1)
    assert.ok(joined !== undefined, 'the new prompt was prefilled in the same step as a decode row')
  } finally {
    await close()
  }
})

test('long prompts are prefilled in chunks of prefillChunk', async () => {
  const { model, engine, close } = await setup({ limits: { prefillChunk: 16, maxStepTokens: 32 } })
  try {
    const prompt = promptFor(3, 50)
    const res = await collect(
      engine.generate({ model: 'toy', promptIds: prompt, params: { maxNewTokens: 3 } })
    )
    assert.equal(res.tokens, toyExpected(prompt, undefined, 3))
    assert.equal(
      model.stepLog.slice(0, 4).map((s) => s.tokens),
      [16, 16, 16, 2]
    )
  } finally {
    await close()
  }
})

test('the queue bound returns BUSY with a retry hint; the queued requests still complete', async () => {
  const { model, engine, close } = await setup({ limits: { maxBatch: 1, maxQueued: 2 } })
  try {
    const accepted = [1, 2, 3].map((i) =>
      engine.generate({ model: 'toy', promptIds: [i], params: { maxNewTokens: 3 } })
    )
    try {
      engine.generate({ model: 'toy', promptIds: [4], params: { maxNewTokens: 3 } })
      assert.unreachable('the fourth request must be refused')
    } catch (err) {
      assert.is((err as Error).name, 'BusyError')
      assert.is((err as { code?: string }).code, 'BUSY')
      assert.ok((err as { retryAfterMs: number }).retryAfterMs >= 100)
    }
    const done = await Promise.all(accepted.map(collect))
    assert.equal(
      done.map((d) => d.done.outputIds),
      [1, 2, 3].map((i) => toyExpected([i], undefined, 3))
    )
    assert.is(engine.metrics().rejectedBusy, 1)
    assert.is(model.maxRowsInUse, 1)
  } finally {
    await close()
  }
})

test('cancelling (signal or leaving the loop) frees the row and the adapter slot', async () => {
  const { model, store, engine, adapters, close } = await setup({ adapters: 2 })
  try {
    const ac = new AbortController()
    const events: TokenEvent[] = []
    for await (const ev of engine.generate({
      model: 'toy',
      adapter: adapters[0]!.cid,
      promptIds: [1, 2, 3],
      params: { maxNewTokens: 500, stopTokenIds: [] },
      signal: ac.signal
    })) {
      events.push(ev)
      if (events.length === 3) ac.abort()
    }
    const done = events.at(-1)!
    assert.is(done.type, 'done')
    assert.is(done.type === 'done' && done.finishReason, 'abort')
    assert.is(model.rowsInUse, 0)
    assert.is(store.stats().hotPinned, 0)

    let n = 0
    for await (const ev of engine.generate({
      model: 'toy',
      adapter: adapters[1]!.cid,
      promptIds: [4],
      params: { maxNewTokens: 500 }
    })) {
      if (ev.type === 'token' && ++n === 2) break
    }
    // break ends the request: the row and the slot come back when the step in flight returns,
    // with no further step for it
    const steps = model.stepLog.length
    for (let i = 0; i < 5 && model.rowsInUse > 0; i++) await tick()
    assert.is(model.stepLog.length, steps)
    assert.is(model.rowsInUse, 0)
    assert.is(store.stats().hotPinned, 0)
    assert.is(engine.metrics().aborted, 2)

    const pre = new AbortController()
    pre.abort()
    const r = await collect(
      engine.generate({ model: 'toy', promptIds: [1], params: { maxNewTokens: 5 }, signal: pre.signal })
    )
    assert.is(r.done.finishReason, 'abort')
    assert.equal(r.tokens, [])
  } finally {
    await close()
  }
})

test('limits and bad requests are refused before queueing, each naming its reason', async () => {
  const { engine, close } = await setup({ limits: { maxNewTokens: 16, maxSeqLen: 32 } })
  const codeOf = (fn: () => unknown) => {
    try {
      fn()
    } catch (err) {
      return (err as { code?: string }).code
    }
    return 'accepted'
  }
  try {
    const gen = (extra: object) => () =>
      engine.generate({ model: 'toy', promptIds: [1, 2], params: { maxNewTokens: 4 }, ...extra })
    assert.is(codeOf(gen({ params: { maxNewTokens: 17 } })), 'LIMIT_EXCEEDED')
    assert.is(codeOf(gen({ promptIds: promptFor(1, 20), params: { maxNewTokens: 16 } })), 'LIMIT_EXCEEDED')
    assert.is(codeOf(gen({ model: 'nope' })), 'MODEL_NOT_FOUND')
    assert.is(codeOf(gen({ prompt: 'hi' })), 'INVALID_PARAMETERS')
    assert.is(codeOf(gen({ promptIds: [1, 999] })), 'INVALID_PARAMETERS')
    assert.is(codeOf(gen({ params: { maxNewTokens: 4, topP: 2 } })), 'INVALID_PARAMETERS')
    assert.is(
      codeOf(gen({ params: { maxNewTokens: 4, stopStrings: ['x'.repeat(300)] } })),
      'INVALID_PARAMETERS'
    )
    try {
      engine.generate({ model: 'toy', promptIds: [1], params: { maxNewTokens: 99 } })
    } catch (err) {
      assert.match((err as Error).message, /99.*at most 16.*engine\.maxNewTokens/)
    }
    // an unknown adapter is found out asynchronously and surfaces from the iterator
    try {
      await collect(
        engine.generate({
          model: 'toy',
          adapter: 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',
          promptIds: [1],
          params: { maxNewTokens: 2 }
        })
      )
      assert.unreachable()
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ADAPTER_NOT_FOUND')
    }
    assert.is(engine.metrics().running, 0)
  } finally {
    await close()
  }
})

test('prompt text, chat messages and stop strings go through the tokenizer', async () => {
  const { model, engine, close } = await setup()
  try {
    const ids = model.tokenizer.encode('hello')
    const plain = await collect(
      engine.generate({ model: 'toy', prompt: 'hello', params: { maxNewTokens: 6 } })
    )
    assert.equal(plain.done.promptIds, ids)
    assert.is(plain.done.text, model.tokenizer.decode(plain.done.outputIds))
    const chat = await collect(
      engine.generate({
        model: 'toy',
        messages: [{ role: 'user', content: 'hi' }],
        params: { maxNewTokens: 3 }
      })
    )
    assert.equal(chat.done.promptIds, model.tokenizer.encode('user:hi;'))
    // stop at the text of the second generated token: the text ends before it
    const full = plain.done.text
    if (full.length >= 3) {
      const stop = full.slice(1, 3)
      const cut = await collect(
        engine.generate({ model: 'toy', prompt: 'hello', params: { maxNewTokens: 6, stopStrings: [stop] } })
      )
      assert.is(cut.done.finishReason, 'stop')
      assert.is(cut.done.text, full.slice(0, full.indexOf(stop)))
    }
    const t = plain.done.timings
    assert.ok(t.queuedMs >= 0 && t.firstTokenMs >= t.queuedMs && t.totalMs >= t.firstTokenMs)
  } finally {
    await close()
  }
})

test('more distinct adapters than slots: requests wait for a slot instead of failing', async () => {
  // 2 usable slots, 4 rows, 6 adapters: at most 2 distinct adapters can run at once
  const { model, store, engine, adapters, close } = await setup({
    slots: 3,
    adapters: 6,
    limits: { maxBatch: 4 }
  })
  try {
    const reqs = Array.from({ length: 12 }, (_, i) => ({ a: adapters[i % 6]!, p: promptFor(i) }))
    const res = await Promise.all(
      reqs.map((r) =>
        collect(
          engine.generate({ model: 'toy', adapter: r.a.cid, promptIds: r.p, params: { maxNewTokens: 6 } })
        )
      )
    )
    res.forEach((x, i) => {
      assert.equal(x.done.outputIds, toyExpected(reqs[i]!.p, reqs[i]!.a.name, 6))
    })
    assert.ok(engine.metrics().slotWaits > 0)
    assert.is(model.slotViolations, 0)
    assert.is(store.stats().hotPinned, 0)
  } finally {
    await close()
  }
})

test('a failed step fails its requests with STEP_FAILED and frees their rows; stop() ends the rest', async () => {
  const { model, engine, close } = await setup()
  try {
    let fail = true
    model.stepDelay = async () => {
      await tick()
      if (fail) throw new Error('ORT exploded')
    }
    try {
      await collect(engine.generate({ model: 'toy', promptIds: [1, 2], params: { maxNewTokens: 4 } }))
      assert.unreachable()
    } catch (err) {
      assert.is((err as { code?: string }).code, 'STEP_FAILED')
      assert.match((err as Error).message, /ORT exploded/)
    }
    assert.is(model.rowsInUse, 0)
    fail = false
    const ok = await collect(
      engine.generate({ model: 'toy', promptIds: [1, 2], params: { maxNewTokens: 4 } })
    )
    assert.equal(ok.done.outputIds, toyExpected([1, 2], undefined, 4))

    const pending = collect(
      engine.generate({ model: 'toy', promptIds: [3], params: { maxNewTokens: 1000, stopTokenIds: [] } })
    )
    await tick()
    await engine.stop()
    try {
      await pending
      assert.unreachable()
    } catch (err) {
      assert.is((err as { code?: string }).code, 'ENGINE_STOPPED')
    }
    assert.is(model.rowsInUse, 0)
    assert.throws(
      () => engine.generate({ model: 'toy', promptIds: [1], params: { maxNewTokens: 1 } }),
      /stopped/
    )
  } finally {
    await close()
  }
})

test('a model loaded with fewer rows or positions bounds the engine limits', async () => {
  const model = new ToyModel({ maxBatch: 2, slots: 3, maxSeqLen: 16 })
  const engine = new Engine(
    { limits: { maxBatch: 8, maxSeqLen: 2048 } },
    { models: [{ model }], sample: greedy }
  )
  engine.start()
  try {
    assert.throws(
      () => engine.generate({ model: 'toy', promptIds: promptFor(1, 10), params: { maxNewTokens: 7 } }),
      /17; this node allows at most 16/
    )
    const all = await Promise.all(
      [1, 2, 3, 4].map((i) =>
        collect(engine.generate({ model: 'toy', promptIds: promptFor(i, 8), params: { maxNewTokens: 8 } }))
      )
    )
    assert.equal(
      all.map((r) => r.done.outputIds),
      [1, 2, 3, 4].map((i) => toyExpected(promptFor(i, 8), undefined, 8))
    )
    assert.is(model.maxRowsInUse, 2)
    assert.is(engine.metrics().maxBatch, 2)
  } finally {
    await engine.stop()
  }
})

test.run()
