import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loadPeftAdapter } from '../../src/runtime/adapters/peft.ts'
import { makeAdapter } from '../../src/runtime/fixtures/make-adapter.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import type { TensorMap } from '../../src/runtime/formats/safetensors.ts'
import { type ModelConfig, parseModelConfig } from '../../src/runtime/model/config.ts'
import {
  applyRope,
  argmax,
  loadReference,
  mergeAdapter,
  type ReferenceModel,
  referenceForward,
  ropeInvFreq
} from '../reference/forward.ts'

const dir = mkdtempSync(join(tmpdir(), 'openlora-ref-'))
test.after(() => rmSync(dir, { recursive: true, force: true }))

const EPS = 1e-6
function handConfig(over: Record<string, unknown> = {}): ModelConfig {
  return parseModelConfig({
    architectures: ['LlamaForCausalLM'],
    hidden_size: 2,
    intermediate_size: 1,
    num_hidden_layers: 1,
    num_attention_heads: 1,
    num_key_value_heads: 1,
    vocab_size: 2,
    rms_norm_eps: EPS,
    tie_word_embeddings: true,
    ...over
  })
}
const t = (shape: number[], data: number[]) => ({
  dtype: 'F32' as const,
  shape,
  data: Float32Array.from(data)
})

/** embed = I, norms = 1, q = k = 0 (uniform attention), v = o = I, MLP off. */
function handWeights(): TensorMap {
  const p = 'model.layers.0.'
  return new Map([
    ['model.embed_tokens.weight', t([2, 2], [1, 0, 0, 1])],
    ['model.norm.weight', t([2], [1, 1])],
    [p + 'input_layernorm.weight', t([2], [1, 1])],
    [p + 'post_attention_layernorm.weight', t([2], [1, 1])],
    [p + 'self_attn.q_proj.weight', t([2, 2], [0, 0, 0, 0])],
    [p + 'self_attn.k_proj.weight', t([2, 2], [0, 0, 0, 0])],
    [p + 'self_attn.v_proj.weight', t([2, 2], [1, 0, 0, 1])],
    [p + 'self_attn.o_proj.weight', t([2, 2], [1, 0, 0, 1])],
    [p + 'mlp.gate_proj.weight', t([1, 2], [0, 0])],
    [p + 'mlp.up_proj.weight', t([1, 2], [0, 0])],
    [p + 'mlp.down_proj.weight', t([2, 1], [0, 0])]
  ])
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.is(a.length, b.length, what)
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`)
}

test('1-layer model worked by hand: residuals, RMSNorm, causal uniform attention, tied head', () => {
  const m: ReferenceModel = { config: handConfig(), weights: handWeights() }
  const [l0, l1] = referenceForward(m, [0, 1])
  const s = 1 / Math.sqrt(0.5 + EPS) // rmsnorm of a one-hot 2-vector
  // position 0 sees only itself: h = e0 + v0 = [1 + s, 0]; final norm → [sqrt(2)(1-ish), 0]
  const h0 = [1 + s, 0]
  const r0 = Math.sqrt((h0[0]! ** 2 + h0[1]! ** 2) / 2 + EPS)
  close(l0!, [h0[0]! / r0, 0], 1e-6, 'pos0')
  // position 1 averages v0 and v1 (q = 0 so all scores tie): h = e1 + [s/2, s/2]
  const h1 = [s / 2, 1 + s / 2]
  const r1 = Math.sqrt((h1[0]! ** 2 + h1[1]! ** 2) / 2 + EPS)
  close(l1!, [h1[0]! / r1, h1[1]! / r1], 1e-6, 'pos1')
})

test('MLP by hand: down(silu(gate x) * up x)', () => {
  const w = handWeights()
  const p = 'model.layers.0.mlp.'
  w.set(p + 'gate_proj.weight', t([1, 2], [1, 0]))
  w.set(p + 'up_proj.weight', t([1, 2], [0.5, 0]))
  w.set(p + 'down_proj.weight', t([2, 1], [0, 2]))
  w.set('model.layers.0.self_attn.v_proj.weight', t([2, 2], [0, 0, 0, 0]))
  const [l0] = referenceForward({ config: handConfig(), weights: w }, [0])
  const x = Math.SQRT2 / Math.sqrt(1 + 2 * EPS) // post-attention norm of h = [1, 0]
  const mlp = 2 * ((x / (1 + Math.exp(-x))) * 0.5 * x)
  const h = [1, mlp]
  const r = Math.sqrt((h[0]! ** 2 + h[1]! ** 2) / 2 + EPS)
  close(l0!, [h[0]! / r, h[1]! / r], 1e-6, 'mlp')
})

test('RoPE: rotate-half pairs (i, i + d/2); inverse frequencies for default, linear and llama3', () => {
  // head_dim 4, theta 100 → inv_freq [1, 0.1]
  const c = handConfig({ hidden_size: 4, num_attention_heads: 1, num_key_value_heads: 1, rope_theta: 100 })
  close(ropeInvFreq(c), [1, 0.1], 1e-7, 'default')
  const x = Float64Array.from([1, 2, 3, 4])
  const y = applyRope(x, 3, ropeInvFreq(c))
  const a0 = 3
  const a1 = Math.fround(0.3)
  close(
    y,
    [
      1 * Math.cos(a0) - 3 * Math.sin(a0),
      2 * Math.cos(a1) - 4 * Math.sin(a1),
      3 * Math.cos(a0) + 1 * Math.sin(a0),
      4 * Math.cos(a1) + 2 * Math.sin(a1)
    ],
    1e-6,
    'rotated'
  )
  close(applyRope(x, 0, ropeInvFreq(c)), x, 0, 'pos 0 is identity')
  const lin = handConfig({ hidden_size: 4, rope_theta: 100, rope_scaling: { type: 'linear', factor: 4 } })
  close(ropeInvFreq(lin), [0.25, 0.025], 1e-8, 'linear')
  // llama3 with original context 64, low 1, high 4 → wavelengths > 64 are scaled by 1/factor,
  // < 16 kept, in between smoothed. theta chosen so the second frequency's wavelength is 32.
  const f1 = (2 * Math.PI) / 32
  const theta = (1 / f1) ** 2
  const l3 = handConfig({
    hidden_size: 4,
    rope_theta: theta,
    rope_scaling: {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64
    }
  })
  // smooth = (64/32 - 1) / (4 - 1) = 1/3 → f·((2/3)/8 + 1/3) = f·5/12
  close(ropeInvFreq(l3), [1, (f1 * 5) / 12], 1e-7, 'llama3 medium')
  const l3low = handConfig({
    hidden_size: 4,
    rope_theta: 1e6,
    rope_scaling: {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64
    }
  })
  close(ropeInvFreq(l3low), [1, 1e-3 / 8], 1e-9, 'llama3 low')
})

test('causal: appending tokens never changes earlier logits (GQA model)', async () => {
  await makeModel({ out: join(dir, 'tiny'), preset: 'llama3-tiny', seed: 3 })
  const m = await loadReference(join(dir, 'tiny'))
  const a = referenceForward(m, [5, 9, 100, 7])
  const b = referenceForward(m, [5, 9, 100, 7, 300, 12])
  for (let i = 0; i < 4; i++) close(a[i]!, b[i]!, 1e-9, `pos${i}`)
  assert.is(a[0]!.length, 512)
  // and the logits are sane: finite, spread out, not all the same token
  assert.ok(a.every((r) => r.every(Number.isFinite)))
  const spread = Math.max(...a[3]!) - Math.min(...a[3]!)
  assert.ok(spread > 0.5 && spread < 100, `spread ${spread}`)
  assert.ok(new Set(b.map(argmax)).size > 1)
})

test('Qwen2 biases and untied lm_head are used', async () => {
  await makeModel({ out: join(dir, 'qwen'), preset: 'qwen2-tiny', seed: 3 })
  const m = await loadReference(join(dir, 'qwen'))
  const base = referenceForward(m, [1, 2, 3])
  const noBias = new Map(m.weights)
  for (const k of m.weights.keys())
    if (k.endsWith('.bias'))
      noBias.set(k, { ...m.weights.get(k)!, data: new Float32Array(m.weights.get(k)!.data.length) })
  const nb = referenceForward({ config: m.config, weights: noBias }, [1, 2, 3])
  assert.ok(Math.abs(base[2]![0]! - nb[2]![0]!) > 1e-4)
  const tied = new Map(m.weights)
  tied.set('lm_head.weight', m.weights.get('model.embed_tokens.weight')!)
  assert.ok(
    Math.abs(referenceForward({ config: m.config, weights: tied }, [1, 2, 3])[2]![0]! - base[2]![0]!) > 1e-4
  )
})

test('mergeAdapter adds scale·B·A to exactly the targeted weights and changes the logits', async () => {
  const model = join(dir, 'qwen')
  const out = join(dir, 'ad')
  await makeAdapter({
    model,
    out,
    rank: 4,
    alpha: 8,
    targets: ['q_proj', 'down_proj'],
    layersToTransform: [1],
    seed: 2
  })
  const m = await loadReference(model)
  const ad = await loadPeftAdapter(out, m.config)
  const merged = mergeAdapter(m.weights, ad)
  const lw = ad.layers.get(1)!.get('q_proj')!
  const W = m.weights.get('model.layers.1.self_attn.q_proj.weight')!.data
  const M = merged.get('model.layers.1.self_attn.q_proj.weight')!.data
  // element (o=3, i=5) by hand
  let s = 0
  for (let r = 0; r < 4; r++) s += lw.B[3 * 4 + r]! * lw.A[r * 64 + 5]!
  assert.ok(Math.abs(M[3 * 64 + 5]! - (W[3 * 64 + 5]! + 2 * s)) < 1e-6)
  assert.is(
    merged.get('model.layers.0.self_attn.q_proj.weight'),
    m.weights.get('model.layers.0.self_attn.q_proj.weight')
  )
  assert.is.not(
    merged.get('model.layers.1.mlp.down_proj.weight'),
    m.weights.get('model.layers.1.mlp.down_proj.weight')
  )
  assert.equal(
    [...m.weights.get('model.layers.1.self_attn.q_proj.weight')!.data.slice(0, 4)],
    [...W.slice(0, 4)]
  )
  const a = referenceForward(m, [4, 8, 15])
  const b = referenceForward({ config: m.config, weights: merged }, [4, 8, 15])
  assert.ok(Math.max(...a[2]!.map((x, i) => Math.abs(x - b[2]![i]!))) > 1e-3)
})

test.run()
