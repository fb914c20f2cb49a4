// The KV cache and heterogeneous batching of LoadedModel.step(): decoding with the cache equals
// recomputing the whole sequence, chunked prefill equals one prefill, and a batch whose rows use
// different adapters (one none), different lengths and a mix of prefill and decode equals each
// row run alone. Real ORT sessions on random tiny checkpoints (three presets: plain Llama, Llama 3
// with head_dim 24 (padded in the graph) and llama3 RoPE, Qwen2 with attention bias).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { makeModel, type Preset } from '../../src/runtime/fixtures/make-model.ts'
import { projectionShape } from '../../src/runtime/model/config.ts'
import {
  type AdapterWeights,
  type LoadedModel,
  loadModel,
  type StepRow
} from '../../src/runtime/model/index.ts'

const root = mkdtempSync(join(tmpdir(), 'openlora-batch-'))
const TOL = 1e-4

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.is(a.length, b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p
  } catch (err) {
    assert.match((err as Error).message, re)
    return
  }
  assert.unreachable(`expected a rejection matching ${re}`)
}

function argmax(x: Float32Array): number {
  let best = 0
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i
  return best
}

/** A deterministic random adapter on every layer and the given targets. */
function randomAdapter(model: LoadedModel, seed: number, rank: number, targets: string[]): AdapterWeights {
  let s = seed
  const rnd = () => {
    s = (s * 1103515245 + 12345) >>> 0
    return s / 2 ** 32 - 0.5
  }
  const layers = new Map()
  for (let l = 0; l < model.config.numLayers; l++) {
    const mods = new Map()
    for (const t of targets) {
      const [inn, out] = projectionShape(model.config, t)
      mods.set(t, {
        A: Float32Array.from({ length: rank * inn }, rnd),
        B: Float32Array.from({ length: out * rank }, rnd),
        r: rank,
        scale: 0.7
      })
    }
    layers.set(l, mods)
  }
  return { layers }
}

async function setup(preset: Preset): Promise<LoadedModel> {
  const dir = join(root, preset)
  await makeModel({ out: dir, preset, seed: 3 })
  const model = await loadModel(dir, {
    cacheDir: join(root, 'cache'),
    maxBatch: 5,
    maxSeqLen: 48,
    pool: {
      slots: 4,
      maxRank: 8,
      targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']
    }
  })
  model.pools.write(1, randomAdapter(model, 11, 4, ['q_proj', 'v_proj']))
  model.pools.write(
    2,
    randomAdapter(model, 12, 8, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'])
  )
  return model
}

/** Runs one sequence alone: prefill, then greedy decode; returns logits of every step. */
async function alone(model: LoadedModel, prompt: number[], slot: number, steps: number) {
  const seq = model.allocSequence()
  const logits = [(await model.step([{ seq, tokens: prompt, slot }]))[0]!.slice()]
  const tokens = [...prompt]
  for (let i = 0; i < steps; i++) {
    const next = argmax(logits.at(-1)!)
    tokens.push(next)
    logits.push((await model.step([{ seq, tokens: [next], slot }]))[0]!.slice())
  }
  model.freeSequence(seq)
  return { logits, tokens }
}

for (const preset of (process.env.PRESETS?.split(',') ?? ['tiny', 'llama3-tiny', 'qwen2-tiny']) as Preset[]) {
  test(`${preset}: KV-cache decode equals recomputing the full sequence`, async () => {
    const model = await setup(preset)
    try {
      for (const slot of [0, 2]) {
        const { logits, tokens } = await alone(model, [1, 17, 42, 99, 7], slot, 6)
        for (let i = 0; i < logits.length; i++) {
          const seq = model.allocSequence()
          const full = (await model.step([{ seq, tokens: tokens.slice(0, 5 + i), slot }]))[0]!
          model.freeSequence(seq)
          const d = maxAbsDiff(logits[i]!, full)
          assert.ok(d <= TOL, `step ${i} slot ${slot}: max abs diff ${d}`)
        }
      }
      // chunked prefill (a chunk over a past) equals one prefill
      const seq = model.allocSequence()
      await model.step([{ seq, tokens: [5, 6, 7], slot: 1 }])
      await model.step([{ seq, tokens: [8], slot: 1 }])
      const chunked = (await model.step([{ seq, tokens: [9, 10, 11, 12], slot: 1 }]))[0]!
      model.freeSequence(seq)
      const s2 = model.allocSequence()
      const once = (await model.step([{ seq: s2, tokens: [5, 6, 7, 8, 9, 10, 11, 12], slot: 1 }]))[0]!
      model.freeSequence(s2)
      assert.ok(maxAbsDiff(chunked, once) <= TOL)
    } finally {
      await model.dispose()
    }
  })

  test(`${preset}: a batch of rows on different adapters, lengths and phases equals each row alone`, async () => {
    const model = await setup(preset)
    try {
      const prompts = [
        [1, 20, 30],
        [1, 5, 6, 7, 8, 9, 10],
        [1, 300],
        [1, 44, 45, 46, 47]
      ]
      const slots = [1, 2, 0, 1]
      const want = []
      for (let i = 0; i < prompts.length; i++) want.push(await alone(model, prompts[i]!, slots[i]!, 5))

      // seq 1 is allocated but never stepped: it sits inside the first-prompt pass of seqs 0, 2, 3
      // (right-padded prompts of lengths 3, 7, 2) and inside every decode pass as a dummy
      const first = model.allocSequence()
      const gap = model.allocSequence()
      const seqs = [first, model.allocSequence(), model.allocSequence(), model.allocSequence()]
      const got: Float32Array[][] = prompts.map(() => [])
      // rows 0-2 prefill together; row 3 starts later, so its prefill joins rows 0-2's decodes
      let out = await model.step(
        prompts.slice(0, 3).map((p, i) => ({ seq: seqs[i]!, tokens: p, slot: slots[i]! }))
      )
      for (let i = 0; i < out.length; i++) got[i]!.push(out[i]!.slice())
      for (let step = 0; step < 6; step++) {
        const rows: StepRow[] = []
        for (let i = 0; i < 4; i++) {
          const k = got[i]!.length
          if (i === 3 && k === 0) rows.push({ seq: seqs[3]!, tokens: prompts[3]!, slot: slots[3]! })
          else if (k > 0 && k <= 5)
            rows.push({
              seq: seqs[i]!,
              tokens: [want[i]!.tokens[prompts[i]!.length + k - 1]!],
              slot: slots[i]!
            })
        }
        if (rows.length === 0) break
        out = await model.step(rows)
        for (let j = 0; j < out.length; j++) got[seqs.indexOf(rows[j]!.seq)]!.push(out[j]!.slice())
      }
      assert.is(model.sequenceLength(gap), 0)
      for (let i = 0; i < 4; i++) {
        assert.is(got[i]!.length, 6, `row ${i} steps`)
        for (let k = 0; k < 6; k++) {
          const d = maxAbsDiff(got[i]![k]!, want[i]!.logits[k]!)
          assert.ok(d <= TOL, `row ${i} step ${k}: max abs diff ${d}`)
        }
      }
      for (const seq of [...seqs, gap]) model.freeSequence(seq)
      // the adapters really change the output (else the comparison above proves nothing)
      const base = await alone(model, prompts[0]!, 0, 0)
      assert.ok(maxAbsDiff(base.logits[0]!, want[0]!.logits[0]!) > 1e-3)
    } finally {
      await model.dispose()
    }
  })
}

test('first prompts on both sides of a decoding row: the row rides along as a dummy, untouched', async () => {
  const model = await setup('llama3-tiny')
  try {
    const pa = [1, 9, 8, 7]
    const pb = [1, 50, 51]
    const pc = [1, 300, 301, 302, 303, 304]
    const want = [await alone(model, pa, 1, 1), await alone(model, pb, 2, 3), await alone(model, pc, 0, 1)]
    const [a, b, c] = [model.allocSequence(), model.allocSequence(), model.allocSequence()]
    const gotB = [(await model.step([{ seq: b, tokens: pb, slot: 2 }]))[0]!.slice()]
    gotB.push((await model.step([{ seq: b, tokens: [want[1]!.tokens[3]!], slot: 2 }]))[0]!.slice())
    // one step: first prompts of a and c (one pass over rows a..c, b inside it) and b's decode
    const out = await model.step([
      { seq: c, tokens: pc, slot: 0 },
      { seq: b, tokens: [want[1]!.tokens[4]!], slot: 2 },
      { seq: a, tokens: pa, slot: 1 }
    ])
    gotB.push(out[1]!.slice())
    assert.ok(maxAbsDiff(out[0]!, want[2]!.logits[0]!) <= TOL, 'row c')
    assert.ok(maxAbsDiff(out[2]!, want[0]!.logits[0]!) <= TOL, 'row a')
    // b's next decode still sees its own, untouched cache
    gotB.push((await model.step([{ seq: b, tokens: [want[1]!.tokens[5]!], slot: 2 }]))[0]!.slice())
    for (let k = 0; k < 4; k++) assert.ok(maxAbsDiff(gotB[k]!, want[1]!.logits[k]!) <= TOL, `row b step ${k}`)
    assert.equal(
      [a, b, c].map((s) => model.sequenceLength(s)),
      [4, 6, 6]
    )
  } finally {
    await model.dispose()
  }
})

test('step rejects rows it cannot run, naming the problem', async () => {
  const model = await setup('tiny')
  try {
    const seq = model.allocSequence()
    await rejects(model.step([{ seq: seq + 1, tokens: [1], slot: 0 }]), /not allocated/)
    await rejects(model.step([{ seq, tokens: [9999], slot: 0 }]), /outside the vocabulary/)
    await rejects(model.step([{ seq, tokens: [1], slot: 4 }]), /slot 4 is out of range/)
    await rejects(model.step([{ seq, tokens: new Array(49).fill(1), slot: 0 }]), /maxSeqLen is 48/)
    await rejects(
      model.step([
        { seq, tokens: [1], slot: 0 },
        { seq, tokens: [2], slot: 0 }
      ]),
      /twice/
    )
    for (let i = 1; i < 5; i++) model.allocSequence()
    assert.throws(
      () => model.allocSequence(),
      (e: Error) => e.name === 'NoFreeSequenceError'
    )
    assert.throws(() => model.pools.write(0, { layers: new Map() }), /slot 0 is out of range/)
    assert.throws(
      () => model.pools.write(1, randomAdapter(model, 1, 9, ['q_proj'])),
      (e: Error) => e.name === 'SlotPoolError' && /rank 9 .* max rank 8/.test(e.message)
    )
  } finally {
    await model.dispose()
  }
})

test.after(() => rmSync(root, { recursive: true, force: true }))
test.run()
