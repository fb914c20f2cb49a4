// The engine's pure parts: step planning, incremental text with stop strings, limits.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { resolveLimits } from '../../src/runtime/engine/config.ts'
import { type PlannableJob, planStep } from '../../src/runtime/engine/scheduler.ts'
import { TextTracker } from '../../src/runtime/engine/text.ts'

function job(id: number, phase: PlannableJob['phase'], promptLen: number, prefilled = 0): PlannableJob {
  return {
    id,
    phase,
    promptIds: Array.from({ length: promptLen }, (_, i) => i + 1),
    prefilled,
    nextToken: 100 + id,
    seq: id,
    slot: id % 3
  }
}

test('decode rows come first, one token each; prefill gets the rest of the budget oldest-first', () => {
  const jobs = [
    job(0, 'prefill', 100, 10),
    job(1, 'decode', 5),
    job(2, 'prefill', 30),
    job(3, 'decode', 5),
    job(4, 'loading', 5)
  ]
  const plan = planStep(jobs, { prefillChunk: 64, maxStepTokens: 80 })
  assert.equal(
    plan.rows.map((r) => r.seq),
    [1, 3, 0, 2]
  )
  assert.equal(
    plan.rows.map((r) => r.tokens.length),
    [1, 1, 64, 14]
  )
  assert.equal(plan.rows[0]!.tokens, [101])
  assert.equal(plan.rows[2]!.tokens[0], 11)
  assert.equal(
    plan.rows.map((r) => r.slot),
    [1, 0, 0, 2]
  )
  // only a chunk that ends its prompt yields a token
  assert.equal(plan.samples, [true, true, false, false])
  assert.is(plan.decodeRows, 2)
  assert.is(plan.prefillTokens, 78)
})

test('a prompt chunk that completes the prompt is sampled; no budget left means no prefill row', () => {
  const plan = planStep([job(0, 'prefill', 20, 4)], { prefillChunk: 64, maxStepTokens: 256 })
  assert.equal(plan.samples, [true])
  assert.is(plan.rows[0]!.tokens.length, 16)
  const full = planStep([job(0, 'decode', 3), job(1, 'decode', 3), job(2, 'prefill', 9)], {
    prefillChunk: 8,
    maxStepTokens: 2
  })
  assert.is(full.rows.length, 2)
})

test('text streams whole characters and never shows part of a stop string', () => {
  const pieces = ['He', 'llo', ' wo', 'rld', '!']
  const decode = (ids: number[]) => ids.map((i) => pieces[i]).join('')
  const t = new TextTracker(decode, ['world'])
  const out = [0, 1, 2].map((n) => t.update(Array.from({ length: n + 1 }, (_, i) => i)))
  assert.ok(out.every((o) => !o.stopped))
  assert.not.ok(
    out
      .map((o) => o.delta)
      .join('')
      .includes(' wo'),
    'the start of the stop string is held back'
  )
  const hit = t.update([0, 1, 2, 3])
  assert.ok(hit.stopped)
  assert.is(t.text, 'Hello ')
  assert.is(out.map((o) => o.delta).join('') + hit.delta, 'Hello ')

  const bytes = new TextTracker((ids) => (ids.length === 1 ? 'a\uFFFD' : 'aé'))
  assert.is(bytes.update([1]).delta, 'a')
  assert.is(bytes.update([1, 2]).delta, 'é')
})

test('limits default with reasons and are checked by name', () => {
  assert.is(resolveLimits().maxBatch, 8)
  assert.throws(
    () => resolveLimits({ maxBatch: 0 }),
    /engine\.maxBatch: must be an integer in 1\.\.1024 \(got 0\)/
  )
  assert.throws(() => resolveLimits({ maxQueued: 1.5 }), /engine\.maxQueued/)
  assert.throws(() => resolveLimits({ maxBatch: 16, maxStepTokens: 8 }), /maxStepTokens/)
})

test.run()
