// The engine's batching on a real AdapterStore (LevelDB, files) and a toy model behind the
// LoadedModel interface: batching must never change a request's tokens, whether requests join a
// running batch, are prefilled in chunks, come as text, or wait for one of too few slots.
// Refusals, cancellation and failures: engine-limits.test.ts.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { collect, promptFor, setupEngine, toyExpected } from './engine-fixture.ts'

test('200 concurrent requests over 50 adapters all complete with the tokens each gives alone', async () => {
  const { model, store, engine, adapters, close } = await setupEngine({
    adapters: 50,
    limits: { maxQueued: 256 }
  })
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
  const { model, engine, close } = await setupEngine()
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
  const { model, engine, close } = await setupEngine({ limits: { prefillChunk: 16, maxStepTokens: 32 } })
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
test('prompt text, chat messages and stop strings go through the tokenizer', async () => {
  const { model, engine, close } = await setupEngine()
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
  const { model, store, engine, adapters, close } = await setupEngine({
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

test.run()
