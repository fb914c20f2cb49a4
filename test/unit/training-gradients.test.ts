// LoRA gradients from the ONNX training graph (src/runtime/training/) against golden gradients
// of PyTorch + PEFT (test/reference/make_train_goldens.py: tiny random Llama checkpoints, PEFT
// adapters with random non-zero A and B, a batch of sequences of different lengths) and against
// finite differences of the graph's own loss; padding must change nothing; bad input is refused.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loadSafetensors } from '../../src/runtime/formats/safetensors.ts'
import { readModelConfig } from '../../src/runtime/model/index.ts'
import { checkTrainable } from '../../src/runtime/training/graph.ts'
import { freshLora, loraFromAdapter, peftName } from '../../src/runtime/training/lora.ts'
import { makeBatch, Trainer, TrainingInputError } from '../../src/runtime/training/trainer.ts'

const FIX = join(import.meta.dirname, '..', 'fixtures', 'train')
const tokensOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'tokens.json'), 'utf8')) as number[][]

/** ‖a − b‖ / ‖b‖ */
function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0
  let den = 0
  for (let i = 0; i < b.length; i++) {
    num += (a[i]! - b[i]!) ** 2
    den += b[i]! ** 2
  }
  return Math.sqrt(num / den)
}

for (const fx of ['llama', 'llama-tied', 'qwen2', 'mistral']) {
  test(`${fx}: step-0 loss and every LoRA gradient match PyTorch + PEFT within 1e-4`, async () => {
    const dir = join(FIX, fx)
    const cfg = await readModelConfig(dir)
    const state = await loraFromAdapter(cfg, join(dir, 'adapter'))
    const gold = JSON.parse(readFileSync(join(dir, 'goldens.json'), 'utf8')) as { loss: number }
    const ref = await loadSafetensors(join(dir, 'grads.safetensors'))
    assert.is(ref.size, state.modules.length * 2, 'one golden per LoRA tensor')
    const tr = await Trainer.create(dir, cfg, state, tokensOf(dir))
    try {
      const r = await tr.evaluate()
      assert.ok(Math.abs(r.loss - gold.loss) / gold.loss < 1e-6, `loss ${r.loss} vs ${gold.loss}`)
      state.modules.forEach((m, i) => {
        for (const [w, g] of [
          ['A', r.gradA[i]!],
          ['B', r.gradB[i]!]
        ] as const) {
          const want = ref.get(peftName(m, w))!.data as Float32Array
          const e = relErr(g, want)
          assert.ok(e <= 1e-4, `${peftName(m, w)}: rel. error ${e}`)
        }
      })
    } finally {
      await tr.close()
    }
  })
}

test('gradients agree with central finite differences of the graph loss along random directions', async () => {
  const dir = join(FIX, 'llama')
  const cfg = await readModelConfig(dir)
  const state = await loraFromAdapter(cfg, join(dir, 'adapter'))
  const tr = await Trainer.create(dir, cfg, state, tokensOf(dir))
  try {
    const r = await tr.evaluate()
    let seed = 3
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1
    for (let trial = 0; trial < 3; trial++) {
      const dA = state.A.map((a) => Float32Array.from(a, rand))
      const dB = state.B.map((b) => Float32Array.from(b, rand))
      let dot = 0
      for (const [ds, gs] of [
        [dA, r.gradA],
        [dB, r.gradB]
      ] as const)
        for (let i = 0; i < ds.length; i++)
          for (let j = 0; j < ds[i]!.length; j++) dot += ds[i]![j]! * gs[i]![j]!
      // Richardson extrapolation of two central differences cancels the O(h²) term, so h can stay
      // large enough that float32 rounding of the loss (~5e-7) does not dominate
      const h = 4e-3
      const at = async (s: number) =>
        (
          await tr.evaluate(
            state.A.map((a, i) => a.map((x, j) => x + s * dA[i]![j]!)),
            state.B.map((b, i) => b.map((x, j) => x + s * dB[i]![j]!))
          )
        ).loss
      const cd = async (e: number) => ((await at(e)) - (await at(-e))) / (2 * e)
      const fd = (4 * (await cd(h / 2)) - (await cd(h))) / 3
      assert.ok(
        Math.abs(fd - dot) <= 2e-3 * Math.abs(dot) + 1e-4,
        `trial ${trial}: fd ${fd} vs grad·d ${dot}`
      )
    }
  } finally {
    await tr.close()
  }
})

test('padding tokens change neither the loss nor the gradients (right padding, masked)', async () => {
  const dir = join(FIX, 'llama')
  const cfg = await readModelConfig(dir)
  const state = await loraFromAdapter(cfg, join(dir, 'adapter'))
  const seqs = tokensOf(dir)
  const short = await Trainer.create(dir, cfg, state, seqs)
  // one more sequence that is longer forces more padding on the others; compare per-sequence
  // losses by training each alone vs together: the mean over tokens must equal the weighted mean
  const alone = await Promise.all(
    seqs.map(async (s) => {
      const t = await Trainer.create(dir, cfg, state, [s])
      const r = await t.evaluate()
      await t.close()
      return { loss: r.loss, n: s.length - 1 }
    })
  )
  const together = (await short.evaluate()).loss
  await short.close()
  const n = alone.reduce((a, b) => a + b.n, 0)
  const want = alone.reduce((a, b) => a + b.loss * b.n, 0) / n
  assert.ok(Math.abs(together - want) < 1e-5, `batched ${together} vs per-sequence ${want}`)
})

test('a fresh adapter is PEFT-initialised: B zero (loss = base loss), A within ±1/√in, seeded', async () => {
  const dir = join(FIX, 'llama')
  const cfg = await readModelConfig(dir)
  const o = { rank: 4, alpha: 8, targets: 'all-linear' as const, rslora: false, seed: 5, baseModel: 'llama' }
  const a = freshLora(cfg, o)
  const b = freshLora(cfg, o)
  assert.is(a.modules.length, cfg.numLayers * 7)
  a.modules.forEach((m, i) => {
    assert.ok(a.B[i]!.every((x) => x === 0))
    const bound = 1 / Math.sqrt(m.inFeatures)
    assert.ok(a.A[i]!.every((x) => Math.abs(x) <= bound))
    assert.ok(
      a.A[i]!.some((x) => Math.abs(x) > bound / 2),
      'spread over the range'
    )
    assert.equal(a.A[i], b.A[i], 'same seed, same init')
  })
  const c = freshLora(cfg, { ...o, seed: 6 })
  assert.not.equal(a.A[0], c.A[0])
  const tr = await Trainer.create(dir, cfg, a, tokensOf(dir))
  const r = await tr.evaluate()
  await tr.close()
  assert.ok(
    r.gradA.every((g) => g.every((x) => x === 0)),
    'with B = 0, dL/dA is exactly 0'
  )
  assert.ok(r.gradB.some((g) => g.some((x) => x !== 0)))
})

test('bad token batches and unsupported architectures are refused with what is allowed', async () => {
  assert.throws(
    () => makeBatch([], 96),
    (e: Error) => e instanceof TrainingInputError && /non-empty/.test(e.message)
  )
  assert.throws(
    () => makeBatch([[1, 96]], 96),
    (e: Error) => /\[0, 96\)/.test(e.message)
  )
  assert.throws(
    () => makeBatch([[1, 2.5]], 96),
    (e: Error) => /integers/.test(e.message)
  )
  assert.throws(
    () => makeBatch([[1], [2]], 96),
    (e: Error) => /nothing is predicted/.test(e.message)
  )
  const gemma = await readModelConfig(join(import.meta.dirname, '..', 'fixtures', 'families', 'gemma'))
  assert.throws(
    () => checkTrainable(gemma),
    (e: Error & { code?: string }) => e.code === 'TRAINING_UNSUPPORTED' && /Llama shape/.test(e.message)
  )
})

// which families train: Llama (fixtures llama, llama-tied), Qwen2 and Mistral (goldens above);
// every other family the runtime serves is refused naming the features the graph lacks
test('families outside the trainable shapes are refused by feature', async () => {
  const why: Record<string, RegExp> = {
    bloom: /layernorm.*ALiBi/,
    falcon: /layernorm.*parallel attention/,
    falcon_new: /layernorm.*parallel attention/,
    gemma: /rms1p.*gelu_tanh.*embedding scale/,
    gemma2: /soft-capping/,
    gemma3_text: /q\/k or sandwich norms/,
    glm: /partial, interleaved/,
    glm4: /partial, interleaved/,
    phi3: /fused projections/,
    phi3_partial: /partial, interleaved.*fused projections/,
    qwen3: /q\/k or sandwich norms/
  }
  for (const [fam, re] of Object.entries(why)) {
    const cfg = await readModelConfig(join(import.meta.dirname, '..', 'fixtures', 'families', fam))
    assert.throws(
      () => checkTrainable(cfg),
      (e: Error & { code?: string }) => e.code === 'TRAINING_UNSUPPORTED' && re.test(e.message),
      fam
    )
  }
  for (const fam of ['llama', 'llama-tied', 'qwen2', 'mistral'])
    checkTrainable(await readModelConfig(join(FIX, fam)))
})

test.run()
