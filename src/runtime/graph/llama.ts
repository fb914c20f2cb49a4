// Builds the ONNX graph of a Llama-family decoder (Llama, Mistral, Qwen2, dense DeepSeek) from its
// config and fp32 weights. The graph is built for continuous batching with many adapters:
//
// - KV cache: per layer `past_key.L` / `past_value.L` of shape [batch, kvHeads, capacity, Dp] are
//   zero-copy views of long-lived buffers. Each batch row says its own total length
//   (`seqlens_k` = total - 1), so rows of different lengths decode together; a row with several
//   new tokens (a prefill chunk over a past) runs as batch 1. The graph returns only the new
//   positions' rotated keys and values (`new_key.L` / `new_value.L` [batch, kvHeads, seq, Dp],
//   picked from GroupQueryAttention's present at `new_pos`), which the runtime writes into the
//   buffers. (GroupQueryAttention's shared-buffer mode would append in place, but it needs the
//   cache bound as an output, and onnxruntime-node copies every output back into a new JS buffer
//   after each run: the whole cache, every step. Measured: a 64 MB pre-allocated output costs
//   ~150 ms per run.)
// - LoRA: for each targeted projection, `lora_A.L.T` [batch, in, rank] and `lora_B.L.T`
//   [batch, rank, out] are graph INPUTS holding each batch row's own adapter: y += (x·A[b])·B[b].
//   Like the KV cache they are views over long-lived per-sequence buffers: the runtime copies an
//   adapter from its slot into a sequence's row once, when the sequence first uses it, so a step
//   gathers nothing (a per-step Gather from the slot pool would copy rows × adapter size every
//   step: computed ~160 MB per step for smollm2-135m at batch 8, rank 16 on all projections, vs
//   538 MB of base weights). Zero rows = no adapter. Switching adapters never touches the session.
// - Only one position per row reaches the final norm and lm_head (logits [batch, vocab]): the
//   flat index `last_index` [batch] (b·seq + position) picks it, so right-padded rows of
//   different lengths each return their own last token, and no other prompt token pays for the
//   vocab projection.
// - RoPE tables are inputs too (`rope_cos`/`rope_sin`), so the cached graph does not depend on
//   the maximum sequence length.
import { type ModelConfig, PROJECTIONS } from '../model/config.ts'
import { type ModelLayout, modelLayout } from '../model/layout.ts'
import type { WeightFormat } from '../weight-format.ts'
import { DT, GraphBuilder } from './proto.ts'
import { INT8_ACCURACY_LEVEL, INT8_BLOCK, type QuantizedLinear, quantizeRows } from './quantize.ts'

/** Bumped whenever the graph for the same weights changes; part of the on-disk cache key. */
export const BUILDER_VERSION = 4

export interface GraphOptions {
  /** projections that get LoRA pool inputs (empty = a graph without LoRA) */
  targets: readonly string[]
  /** default fp32; int8 builds each projection and the lm_head as MatMulNBits (weight-format.ts) */
  weightFormat?: WeightFormat
}

export interface WeightSource {
  /** the fp32 tensor of a checkpoint name; throws naming the tensor when it is missing */
  get(name: string, shape: number[]): Float32Array
  has(name: string): boolean
}

export const INPUT_IDS = 'input_ids'
export const SEQLENS_K = 'seqlens_k'
export const TOTAL_SEQ_LEN = 'total_sequence_length'
export const LAST_INDEX = 'last_index'
export const NEW_POS = 'new_pos'
export const ROPE_COS = 'rope_cos'
export const ROPE_SIN = 'rope_sin'
export const LOGITS = 'logits'
export const pastKey = (l: number) => `past_key.${l}`
export const pastValue = (l: number) => `past_value.${l}`
export const presentKey = (l: number) => `present_key.${l}`
export const presentValue = (l: number) => `present_value.${l}`
export const newKey = (l: number) => `new_key.${l}`
export const newValue = (l: number) => `new_value.${l}`
export const loraA = (l: number, t: string) => `lora_A.${l}.${t}`
export const loraB = (l: number, t: string) => `lora_B.${l}.${t}`

/**
 * One checkpoint Linear weight [out, in] placed into a (possibly fused, head-padded) graph
 * weight: its output features land at `at + mapOut(o)`, its input features at `mapIn(i)`.
 */
interface LinearPart {
  src: Float32Array
  out: number
  inn: number
  at: number
  mapOut: (i: number) => number
  mapIn: (i: number) => number
}

const ident = (i: number) => i

/** The parts as MatMul's B, transposed: [K, N] row-major. */
function assembleTransposed(parts: readonly LinearPart[], K: number, N: number): Float32Array {
  const dst = new Float32Array(K * N)
  for (const { src, out, inn, at, mapOut, mapIn } of parts) {
    for (let o = 0; o < out; o++) {
      const c = at + mapOut(o)
      const row = o * inn
      for (let i = 0; i < inn; i++) dst[mapIn(i) * N + c] = src[row + i]!
    }
  }
  return dst
}

/** The parts as rows of output features: [N, K] row-major (MatMulNBits' layout). */
function assembleRows(parts: readonly LinearPart[], K: number, N: number): Float32Array {
  const dst = new Float32Array(N * K)
  for (const { src, out, inn, at, mapOut, mapIn } of parts) {
    for (let o = 0; o < out; o++) {
      const r = (at + mapOut(o)) * K
      if (mapIn === ident) dst.set(src.subarray(o * inn, (o + 1) * inn), r)
      else for (let i = 0; i < inn; i++) dst[r + mapIn(i)] = src[o * inn + i]!
    }
  }
  return dst
}

export function buildDecoderGraph(
  cfg: ModelConfig,
  weights: WeightSource,
  opts: GraphOptions & { dataPath?: string }
): { graph: GraphBuilder; layout: ModelLayout } {
  const layout = modelLayout(cfg)
  const g = new GraphBuilder('weights.bin', opts.dataPath)
  try {
    buildInto(g, layout, weights, opts)
  } catch (err) {
    g.finishExternalData()
    throw err
  }
  return { graph: g, layout }
}

function buildInto(g: GraphBuilder, layout: ModelLayout, weights: WeightSource, opts: GraphOptions): void {
  const cfg = layout.config
  const H = cfg.hiddenSize
  const Dp = layout.paddedHeadDim
  const qOut = cfg.numHeads * Dp
  const kvOut = cfg.numKvHeads * Dp
  const targets = PROJECTIONS.filter((t) => opts.targets.includes(t))
  const eps = { float: cfg.rmsNormEps }

  g.input(INPUT_IDS, DT.INT64, ['batch', 'seq'])
  g.input(SEQLENS_K, DT.INT32, ['batch'])
  g.input(TOTAL_SEQ_LEN, DT.INT32, [])
  g.input(ROPE_COS, DT.FLOAT, ['positions', Dp / 2])
  g.input(ROPE_SIN, DT.FLOAT, ['positions', Dp / 2])
  g.input(LAST_INDEX, DT.INT64, ['batch'])
  // where each new token's key/value sits in GroupQueryAttention's present: [batch, 1, seq, 1],
  // expanded once to the [batch, kvHeads, seq, Dp] index GatherElements takes
  g.input(NEW_POS, DT.INT64, ['batch', 1, 'seq', 1])
  const ids = g.op('Shape', [INPUT_IDS])
  const newIndexShape = g.op(
    'Concat',
    [
      g.op('Slice', [ids, g.int64('shape.b0', [0]), g.int64('shape.b1', [1])]),
      g.int64('shape.kv', [cfg.numKvHeads]),
      g.op('Slice', [ids, g.int64('shape.s0', [1]), g.int64('shape.s1', [2])]),
      g.int64('shape.dp', [Dp])
    ],
    { axis: 0 }
  )
  const newIndex = g.op('Expand', [NEW_POS, newIndexShape])

  const embedName = 'model.embed_tokens.weight'
  const embed = g.weight(embedName, weights.get(embedName, [cfg.vocabSize, H]), [cfg.vocabSize, H])
  let h = g.op('Gather', [embed, INPUT_IDS], { axis: 0 })

  const lora = (l: number, t: string, x: string, y: string): string => {
    if (!targets.includes(t as (typeof targets)[number])) return y
    const [inn, out] = layout.graphShape(t)
    const a = g.input(loraA(l, t), DT.FLOAT, ['batch', inn, 'rank'])
    const b = g.input(loraB(l, t), DT.FLOAT, ['batch', 'rank', out])
    const xa = g.op('MatMul', [x, a])
    return g.op('Add', [y, g.op('MatMul', [xa, b])])
  }
  const norm = (x: string, name: string): string => {
    const w = g.weight(name, weights.get(name, [H]), [H])
    return g.node('SimplifiedLayerNormalization', [x, w], 1, { axis: -1, epsilon: eps, stash_type: 1 })[0]!
  }

  const int8 = opts.weightFormat === 'int8'
  const nbits = (x: string, name: string, ql: QuantizedLinear): string => {
    const kb = ql.scales.length / ql.N
    return g.op(
      'MatMulNBits',
      [
        x,
        g.bytes(`${name}.q8`, ql.q, [ql.N, kb, ql.blockSize]),
        g.weight(`${name}.scales`, ql.scales, [ql.N, kb])
      ],
      // accuracy_level 4: activations quantized to int8 per block, int8 dot products
      { K: ql.K, N: ql.N, bits: 8, block_size: ql.blockSize, accuracy_level: INT8_ACCURACY_LEVEL },
      'com.microsoft'
    )
  }
  // x [.., K] times the weight the parts make up, K inputs → N outputs
  const linear = (x: string, name: string, K: number, N: number, parts: LinearPart[]): string =>
    int8
      ? nbits(x, name, quantizeRows(assembleRows(parts, K, N), N, K))
      : g.op('MatMul', [x, g.weight(`${name}.weight_t`, assembleTransposed(parts, K, N), [K, N])])
  const part = (src: Float32Array, out: number, inn: number, at = 0, mapOut = ident, mapIn = ident) => ({
    src,
    out,
    inn,
    at,
    mapOut,
    mapIn
  })

  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}`
    const x = norm(h, `${p}.input_layernorm.weight`)

    // q, k and v share one MatMul (one read of x, one kernel); columns [q | k | v], head-padded
    const qkvCols = qOut + 2 * kvOut
    const parts: [string, number, number][] = [
      ['q_proj', cfg.numHeads * cfg.headDim, 0],
      ['k_proj', cfg.numKvHeads * cfg.headDim, qOut],
      ['v_proj', cfg.numKvHeads * cfg.headDim, qOut + kvOut]
    ]
    let qkv = linear(
      x,
      `${p}.qkv`,
      H,
      qkvCols,
      parts.map(([t, out, col]) =>
        part(weights.get(`${p}.self_attn.${t}.weight`, [out, H]), out, H, col, layout.padFeature)
      )
    )
    if (cfg.attentionBias) {
      const bias = new Float32Array(qkvCols)
      for (const [t, out, col] of parts) {
        const b = weights.get(`${p}.self_attn.${t}.bias`, [out])
        for (let i = 0; i < out; i++) bias[col + layout.padFeature(i)] = b[i]!
      }
      qkv = g.op('Add', [qkv, g.weight(`${p}.qkv.bias`, bias, [qkvCols])])
    }
    const split = g.int64(`${p}.qkv.split`, [qOut, kvOut, kvOut])
    let [q, k, v] = g.node('Split', [qkv, split], 3, { axis: -1 }) as [string, string, string]
    q = lora(l, 'q_proj', x, q)
    k = lora(l, 'k_proj', x, k)
    v = lora(l, 'v_proj', x, v)

    const [attn] = g.node(
      'GroupQueryAttention',
      [q, k, v, pastKey(l), pastValue(l), SEQLENS_K, TOTAL_SEQ_LEN, ROPE_COS, ROPE_SIN],
      [g.tmp('attn'), presentKey(l), presentValue(l)],
      {
        num_heads: cfg.numHeads,
        kv_num_heads: cfg.numKvHeads,
        do_rotary: 1,
        rotary_interleaved: 0,
        // the real head size: padded dims are zero and add nothing to q·k
        scale: { float: 1 / Math.sqrt(cfg.headDim) }
      },
      'com.microsoft'
    )
    for (const name of [pastKey(l), pastValue(l)])
      g.input(name, DT.FLOAT, ['batch', cfg.numKvHeads, 'capacity', Dp])
    g.node('GatherElements', [presentKey(l), newIndex], [newKey(l)], { axis: 2 })
    g.node('GatherElements', [presentValue(l), newIndex], [newValue(l)], { axis: 2 })
    for (const name of [newKey(l), newValue(l)])
      g.output(name, DT.FLOAT, ['batch', cfg.numKvHeads, 'seq', Dp])

    const qIn = cfg.numHeads * cfg.headDim
    const wo = weights.get(`${p}.self_attn.o_proj.weight`, [H, qIn])
    let o = linear(attn!, `${p}.o`, qOut, H, [part(wo, H, qIn, 0, ident, layout.padFeature)])
    o = lora(l, 'o_proj', attn!, o)
    h = g.op('Add', [h, o])

    const x2 = norm(h, `${p}.post_attention_layernorm.weight`)
    const I = cfg.intermediateSize
    // gate and up share one MatMul, columns [gate | up]
    const gu = linear(x2, `${p}.gate_up`, H, 2 * I, [
      part(weights.get(`${p}.mlp.gate_proj.weight`, [I, H]), I, H, 0),
      part(weights.get(`${p}.mlp.up_proj.weight`, [I, H]), I, H, I)
    ])
    let [gate, up] = g.node('Split', [gu, g.int64(`${p}.gate_up.split`, [I, I])], 2, { axis: -1 }) as [
      string,
      string
    ]
    gate = lora(l, 'gate_proj', x2, gate)
    up = lora(l, 'up_proj', x2, up)
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up])
    let d = linear(act, `${p}.down`, I, H, [part(weights.get(`${p}.mlp.down_proj.weight`, [H, I]), H, I)])
    d = lora(l, 'down_proj', act, d)
    h = g.op('Add', [h, d])
  }

  // one position per row: [batch, seq, H] → [batch·seq, H] → [batch, H]
  const rowsFlat = g.op('Reshape', [h, g.int64('last.flat_shape', [-1, H])])
  const flat = g.op('Gather', [rowsFlat, LAST_INDEX], { axis: 0 })
  const xf = norm(flat, 'model.norm.weight')
  // Gemm with transB reads the checkpoint's [vocab, H] layout directly, so a tied lm_head shares
  // the embedding initializer instead of storing a transposed copy
  const V = cfg.vocabSize
  // read (again) here rather than held through the build: the source may read each tensor from disk
  const headName = cfg.tieWordEmbeddings ? embedName : 'lm_head.weight'
  if (int8) {
    // [vocab, H] is MatMulNBits' [N, K] already; a tied head gets its own int8 copy (the
    // embedding Gather keeps reading fp32 rows)
    const logits = nbits(xf, 'lm_head', quantizeRows(weights.get(headName, [V, H]), V, H))
    g.node('Identity', [logits], [LOGITS])
  } else {
    const head = cfg.tieWordEmbeddings ? embed : g.weight(headName, weights.get(headName, [V, H]), [V, H])
    g.node('Gemm', [xf, head], [LOGITS], { transB: 1 })
  }
  g.output(LOGITS, DT.FLOAT, ['batch', cfg.vocabSize])
}

export const OPSETS = { '': 17, 'com.microsoft': 1 }

/**
 * What of a weight format shapes the built graph, for the build-cache key: a change of block
 * size or accuracy level must never reuse a graph built with the old one. fp32 has no key (its
 * cache keys predate formats).
 */
export function weightFormatKey(format: WeightFormat): string | undefined {
  return format === 'int8' ? `int8-b${INT8_BLOCK}-a${INT8_ACCURACY_LEVEL}` : undefined
}
