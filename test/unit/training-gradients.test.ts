// LoRA gradients from the ONNX training graph (src/runtime/training/) against golden gradients
// of PyTorch + PEFT (test/reference/make_train_goldens.py: tiny random checkpoints of every
// trainable family, PEFT
// adapters with random non-zero A and B, a batch of sequences of different lengths) and against
// finite differences of the graph's own loss; padding must change nothing; bad input is refused.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loadSafetensors } from '../../src/runtime/formats/safetensors.ts'
import type { ModelConfig } from '../../src/runtime/model/config.ts'
import { FAMILIES } from '../../src/runtime/model/families/index.ts'
import { readModelConfig } from '../../src/runtime/model/index.ts'
import { checkTrainable, type TrainingGraphOptions } from '../../src/runtime/training/graph.ts'
import { freshLora, loraFromAdapter, peftName, saveLora } from '../../src/runtime/training/lora.ts'
import { makeBatch, Trainer, TrainingInputError } from '../../src/runtime/training/trainer.ts'
import { TRAIN_GOLDENS } from '../helpers/train-fixtures.ts'

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

const GOLDEN = TRAIN_GOLDENS

async function checkGolden(fx: string, graph?: TrainingGraphOptions): Promise<void> {
  {
    const dir = join(FIX, fx)
    const cfg = await readModelConfig(dir)
    const state = await loraFromAdapter(cfg, join(dir, 'adapter'))
    const gold = JSON.parse(readFileSync(join(dir, 'goldens.json'), 'utf8')) as { loss: number }
    const ref = await loadSafetensors(join(dir, 'grads.safetensors'))
    assert.is(ref.size, state.modules.length * 2, 'one golden per LoRA tensor')
    const tr = await Trainer.create(dir, cfg, state, tokensOf(dir), { graph })
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
  }
}

for (const fx of GOLDEN)
  test(`${fx}: step-0 loss and every LoRA gradient match PyTorch + PEFT within 1e-4`, () => checkGolden(fx))

// the 135M shape cuts its logits into row blocks; the goldens' vocab fits one, so force blocks of
// 7 rows (30 rows: 4 full blocks and a short one) on an untied head, a tied one and a soft-capped one
for (const fx of ['llama', 'llama-tied', 'gemma2'])
  test(`${fx}: the loss and LoRA gradients with the head and loss in row blocks match PyTorch + PEFT`, () =>
    checkGolden(fx, { logitBlockFloats: 7 * 96 }))

// independent of PyTorch: the tape's own VJPs (and those the other families add: tanh soft-caps,
// GELU, LayerNorm, ALiBi, fused-row permutations and slices) against its own forward
for (const fx of ['llama', 'gemma2', 'bloom', 'phi3'])
  test(`${fx}: gradients agree with central finite differences of the graph loss along random directions`, async () => {
    const dir = join(FIX, fx)
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
        // large enough that float32 rounding of the loss (~5e-7) does not dominate; that rounding
        // still leaves ~2.5e-4 of noise (4/3 · √2 · 5e-7 / (h/2)), the absolute term below (seen:
        // 2e-4 on a bloom direction nearly orthogonal to the gradient, ≤ 1e-4 relative elsewhere)
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
          Math.abs(fd - dot) <= 2e-3 * Math.abs(dot) + 3e-4,
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

test('bad token batches and unknown targets are refused with what is allowed', async () => {
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
  const phi3 = await readModelConfig(join(FIX, 'phi3'))
  const o = { rank: 4, alpha: 8, rslora: false, seed: 1, baseModel: 'phi3' }
  assert.throws(
    () => freshLora(phi3, { ...o, targets: ['q_norm'] }),
    (e: Error) =>
      e instanceof TrainingInputError && /allowed: qkv_proj, o_proj, gate_up_proj, down_proj/.test(e.message)
  )
})

test('Phi-3: a projection name adapts the fused module that holds it, as PEFT names it', async () => {
  const cfg = await readModelConfig(join(FIX, 'phi3'))
  const o = { rank: 4, alpha: 8, rslora: false, seed: 1, baseModel: 'phi3' }
  const s = freshLora(cfg, { ...o, targets: ['q_proj', 'v_proj', 'down_proj'] })
  assert.equal(s.config.target_modules, ['qkv_proj', 'down_proj'])
  assert.equal(
    s.modules.map((m) => [m.path, m.inFeatures, m.outFeatures]),
    [0, 1].flatMap((l) => [
      [`model.layers.${l}.self_attn.qkv_proj`, 64, 128],
      [`model.layers.${l}.mlp.down_proj`, 96, 64]
    ])
  )
  assert.equal(freshLora(cfg, { ...o, targets: ['gate_up_proj'] }).config.target_modules, ['gate_up_proj'])
})

test('Phi-3: a PEFT adapter on fused modules saves back to the same tensors', async () => {
  const dir = join(FIX, 'phi3')
  const cfg = await readModelConfig(dir)
  const state = await loraFromAdapter(cfg, join(dir, 'adapter'))
  assert.equal(
    state.modules.slice(0, 4).map((m) => m.target),
    ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj']
  )
  const out = mkdtempSync(join(tmpdir(), 'openlora-phi3-lora-'))
  try {
    await saveLora(state, out)
    const want = await loadSafetensors(join(dir, 'adapter', 'adapter_model.safetensors'))
    const got = await loadSafetensors(join(out, 'adapter_model.safetensors'))
    assert.equal([...got.keys()].sort(), [...want.keys()].sort())
    for (const [name, w] of want) {
      assert.equal(got.get(name)!.shape, w.shape, name)
      assert.equal(got.get(name)!.data, w.data, name)
    }
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
})

// each fixture must exercise what its family adds: turning one feature off moves the loss away
// from PyTorch's by far more than the 1e-6 the golden comparison allows, so that comparison would
// catch the feature computed wrongly
test('every family feature changes its fixture loss (the goldens exercise it)', async () => {
  const off: [string, string, (c: ModelConfig) => void][] = [
    ['gemma', 'embedding scale', (c) => (c.embedScale = null)],
    ['gemma', '(1 + w) norms', (c) => (c.norm = 'rms')],
    ['gemma', 'GELU-tanh', (c) => (c.activation = 'silu')],
    ['gemma2', 'attention soft-capping', (c) => (c.attnSoftcap = null)],
    ['gemma2', 'final soft-capping', (c) => (c.finalSoftcap = null)],
    ['gemma2', 'sliding window', (c) => (c.layerWindows = c.layerWindows.map(() => null))],
    ['gemma2', 'query_pre_attn_scalar', (c) => (c.attentionScale = 1 / Math.sqrt(c.headDim))],
    ['gemma3', 'local RoPE base', (c) => (c.ropeLocalTheta = null)],
    ['gemma3', 'sliding window', (c) => (c.layerWindows = c.layerWindows.map(() => null))],
    ['phi3', 'partial rotary', (c) => (c.rotaryDim = c.headDim)],
    ['glm', 'interleaved rotary pairs', (c) => (c.ropeInterleaved = false)],
    ['glm4', 'partial rotary', (c) => (c.rotaryDim = c.headDim)],
    ['bloom', 'ALiBi', (c) => (c.positions = 'rope')],
    ['bloom', 'LayerNorm', (c) => (c.norm = 'rms')],
    ['falcon', 'parallel attention + MLP', (c) => (c.parallelBlock = false)],
    ['falcon-rw', "Falcon's ALiBi (before the scale, bfloat16)", (c) => (c.alibiStyle = 'bloom')]
  ]
  for (const [fx, what, change] of off) {
    const dir = join(FIX, fx)
    const cfg = await readModelConfig(dir)
    change(cfg)
    const tr = await Trainer.create(dir, cfg, await loraFromAdapter(cfg, join(dir, 'adapter')), tokensOf(dir))
    const { loss } = await tr.evaluate()
    await tr.close()
    const gold = (JSON.parse(readFileSync(join(dir, 'goldens.json'), 'utf8')) as { loss: number }).loss
    assert.ok(Math.abs(loss - gold) / gold > 1e-4, `${fx} without ${what}: loss ${loss} vs golden ${gold}`)
  }
})

// every family the runtime serves trains: the fixtures above, and the serving fixtures of
// test/fixtures/families (other layouts and options of the same families) build a training graph
test('every family the runtime serves passes the training check', async () => {
  const fams = join(import.meta.dirname, '..', 'fixtures', 'families')
  for (const fam of readdirSync(fams)) checkTrainable(await readModelConfig(join(fams, fam)))
  for (const fam of GOLDEN) checkTrainable(await readModelConfig(join(FIX, fam)))
  // per family file (the registry's keys): Mistral's and DeepSeek's architectures are the llama
  // file's (transformers has no DeepseekForCausalLM class to make a golden with)
  const seen = new Set(
    await Promise.all(GOLDEN.map(async (f) => (await readModelConfig(join(FIX, f))).family))
  )
  assert.equal(
    FAMILIES.map((f) => f.name).filter((n) => !seen.has(n)),
    [],
    'a golden fixture for every family'
  )
})

test.run()
