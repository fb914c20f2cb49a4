// The node's one training slot (src/protocols/training/slot.ts), which /openlora/train jobs and the
// gateway's jobs share: a held slot refuses tryAcquire and queues acquire in order, an abort leaves
// the queue, the retry hint follows the running job's step times; and the target names the remote
// schema takes (LORA_TARGET_NAMES) cover the module names of every family the runtime trains, so
// a fused module (Phi-3's qkv_proj, BLOOM's query_key_value, …) is never refused by the schema.
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TrainJobRequestSchema } from '../../src/protocols/training/codec.ts'
import { TrainingSlot } from '../../src/protocols/training/slot.ts'
import { familyOf } from '../../src/runtime/model/families/index.ts'
import { LORA_TARGET_NAMES } from '../../src/runtime/model/families/types.ts'
import { readModelConfig } from '../../src/runtime/model/index.ts'

test('a held slot refuses tryAcquire and hands itself to waiters in order', async () => {
  const slot = new TrainingSlot()
  const a = slot.tryAcquire(10, 'job a')!
  assert.ok(a)
  assert.ok(slot.busy)
  assert.is(slot.tryAcquire(1, 'job b'), undefined)
  assert.match(slot.describe(), /job a, step 0 of 10/)
  const order: string[] = []
  const queued = (steps: number, what: string) =>
    slot.acquire(steps, what).then((l) => {
      order.push(what)
      return l
    })
  const b = queued(2, 'b')
  const c = queued(3, 'c')
  await new Promise((r) => setTimeout(r, 5))
  assert.equal(order, [])
  a.release()
  a.release() // twice is once
  const lb = await b
  assert.equal(order, ['b'])
  assert.is(slot.tryAcquire(1, 'x'), undefined, 'b holds it now')
  lb.release()
  ;(await c).release()
  assert.equal(order, ['b', 'c'])
  assert.not.ok(slot.busy)
})

test('an abort while waiting leaves the queue; the next waiter still gets the slot', async () => {
  const slot = new TrainingSlot()
  const a = slot.tryAcquire(1, 'a')!
  const ac = new AbortController()
  const gone = slot.acquire(1, 'b', ac.signal)
  const next = slot.acquire(1, 'c')
  ac.abort(new Error('closed'))
  await gone.then(
    () => assert.unreachable('aborted'),
    (err) => assert.is((err as Error).message, 'closed')
  )
  a.release()
  const lc = await next
  assert.match(slot.describe(), /^c,/)
  lc.release()
})

test('the retry hint is the running job’s remaining steps at its step time, bounded', () => {
  const slot = new TrainingSlot()
  assert.is(slot.retryAfterMs(), 0)
  const l = slot.tryAcquire(100, 'a')!
  assert.is(slot.retryAfterMs(), 10_000, 'no step yet: a fixed guess')
  l.progress(50)
  // 50 steps in ~0 ms: the hint is bounded below by a second
  assert.is(slot.retryAfterMs(), 1_000)
  l.release()
})

test('every family’s LoRA module names are accepted by the remote job schema', async () => {
  const fixtures = join(import.meta.dirname, '..', 'fixtures', 'train')
  const seen = new Set<string>()
  for (const name of readdirSync(fixtures).filter((f) => !f.endsWith('.json'))) {
    const cfg = await readModelConfig(join(fixtures, name))
    for (const m of familyOf(cfg).layer(cfg, 0).modules) seen.add(m.path.slice(m.path.lastIndexOf('.') + 1))
  }
  for (const n of seen) assert.ok((LORA_TARGET_NAMES as readonly string[]).includes(n), `${n} is listed`)
  for (const fused of ['qkv_proj', 'gate_up_proj', 'query_key_value', 'dense_h_to_4h'])
    assert.ok(seen.has(fused), `a fixture has ${fused}`)
  const job = {
    model: 'm',
    datanet: { id: `0x${'ab'.repeat(32)}` },
    steps: 1,
    lr: 0.1,
    optimizer: 'sgd',
    seed: 1
  }
  assert.ok(TrainJobRequestSchema.safeParse({ ...job, targets: ['qkv_proj', 'gate_up_proj'] }).success)
  assert.ok(TrainJobRequestSchema.safeParse({ ...job, targets: ['query_key_value', 'dense'] }).success)
  const bad = TrainJobRequestSchema.safeParse({ ...job, targets: ['qkv'] })
  assert.not.ok(bad.success)
  assert.match(JSON.stringify(bad.error?.issues[0]), /query_key_value/, 'the refusal lists the allowed names')
})

test.run()
