// Builds the ONNX graph of a decoder from its ModelConfig (the architecture features a family file
// read from config.json) and the family's weight names (model/families/). One builder for every
// family: norms, RoPE, q/k norm, sliding windows, soft-capping, sandwich norms, activations and
// fused checkpoint modules are all read from the description. Built for continuous batching with
// many adapters:
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
import { familyOf, type ModelConfig, type Projection, projectionsOf } from '../model/config.ts'
import type { LayerWeights } from '../model/families/types.ts'
import { type ModelLayout, modelLayout } from '../model/layout.ts'
import { alibiInputs } from './alibi.ts'
import {
  assembleRows,
  assembleTransposed,
  fusedResidualNorm,
  ident,
  type LinearOptions,
  type LinearPart,
  layerReader,
  quantizedLinear,
  type WeightSource
} from './linear.ts'
import {
  INPUT_IDS,
  LAST_INDEX,
  LOGITS,
  loraA,
  loraB,
  NEW_POS,
  newKey,
  newValue,
  pastKey,
  pastValue,
  presentKey,
  presentValue,
  ROPE_COS,
  ROPE_COS_LOCAL,
  ROPE_SIN,
  ROPE_SIN_LOCAL,
  SEQLENS_K,
  TOTAL_SEQ_LEN
} from './names.ts'
import { DT, GraphBuilder } from './proto.ts'

export { type WeightSource, weightFormatKey } from './linear.ts'
export * from './names.ts'

/** Bumped whenever the graph for the same weights changes; part of the on-disk cache key. */
export const BUILDER_VERSION = 5

export interface GraphOptions extends LinearOptions {
  /** projections that get LoRA pool inputs (empty = a graph without LoRA) */
  targets: readonly string[]
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
  const family = familyOf(cfg)
  const H = cfg.hiddenSize
  const D = cfg.headDim
  const Dp = layout.paddedHeadDim
  const qOut = cfg.numHeads * Dp
  const kvOut = cfg.numKvHeads * Dp
  const targets = projectionsOf(cfg).filter((t) => opts.targets.includes(t))
  const eps = { float: cfg.rmsNormEps }
  const localRope = cfg.ropeLocalTheta !== null

  g.input(INPUT_IDS, DT.INT64, ['batch', 'seq'])
  g.input(SEQLENS_K, DT.INT32, ['batch'])
  g.input(TOTAL_SEQ_LEN, DT.INT32, [])
  g.input(ROPE_COS, DT.FLOAT, ['positions', Dp / 2])
  g.input(ROPE_SIN, DT.FLOAT, ['positions', Dp / 2])
  if (localRope) {
    g.input(ROPE_COS_LOCAL, DT.FLOAT, ['positions', Dp / 2])
    g.input(ROPE_SIN_LOCAL, DT.FLOAT, ['positions', Dp / 2])
  }
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

  const embedName = family.embedName
  const embed = g.weight(embedName, weights.get(embedName, [cfg.vocabSize, H]), [cfg.vocabSize, H])
  let h = g.op('Gather', [embed, INPUT_IDS], { axis: 0 })
  if (cfg.embedScale !== null)
    h = g.op('Mul', [h, g.weight('embed.scale', Float32Array.of(cfg.embedScale), [])])

  const lora = (l: number, t: string, x: string, y: string): string => {
    if (!targets.includes(t as (typeof targets)[number])) return y
    const [inn, out] = layout.graphShape(t)
    const a = g.input(loraA(l, t), DT.FLOAT, ['batch', inn, 'rank'])
    const b = g.input(loraB(l, t), DT.FLOAT, ['batch', 'rank', out])
    const xa = g.op('MatMul', [x, a])
    return g.op('Add', [y, g.op('MatMul', [xa, b])])
  }
  /** the norm's weight as the graph multiplies by it: Gemma's (1 + w) folded in, in fp32 as HF does */
  const normWeight = (name: string, n: number): Float32Array => {
    const w = weights.get(name, [n])
    if (cfg.norm !== 'rms1p') return w
    const out = new Float32Array(n)
    for (let i = 0; i < n; i++) out[i] = 1 + w[i]!
    return out
  }
  const norm = (x: string, name: string): string => {
    const w = g.weight(name, normWeight(name, H), [H])
    if (cfg.norm === 'layernorm') {
      const bn = name.replace(/weight$/, 'bias')
      const b = g.weight(bn, weights.get(bn, [H]), [H])
      return g.op('LayerNormalization', [x, w, b], { axis: -1, epsilon: eps, stash_type: 1 })
    }
    return g.node('SimplifiedLayerNormalization', [x, w], 1, { axis: -1, epsilon: eps, stash_type: 1 })[0]!
  }
  // per-head RMSNorm over the real head size: with zero padding, mean over Dp = (D/Dp)·mean over D,
  // so eps scales by D/Dp and the weight by sqrt(D/Dp) (exact up to rounding)
  const headNorm = (x: string, name: string, heads: number): string => {
    const w = normWeight(name, D)
    const wp = new Float32Array(Dp)
    const k = Math.sqrt(D / Dp)
    for (let i = 0; i < D; i++) wp[layout.padFeature(i)] = w[i]! * k
    const shaped = g.op('Reshape', [x, g.int64(`${name}.shape`, [0, 0, heads, Dp])])
    const y = g.node('SimplifiedLayerNormalization', [shaped, g.weight(name, wp, [Dp])], 1, {
      axis: -1,
      epsilon: { float: (cfg.rmsNormEps * D) / Dp },
      stash_type: 1
    })[0]!
    return g.op('Reshape', [y, g.int64(`${name}.back`, [0, 0, heads * Dp])])
  }

  const quantized = opts.weightFormat === 'int8' || opts.weightFormat === 'int4'
  // x [.., K] times the weight the parts make up, K inputs → N outputs
  const linear = (x: string, name: string, K: number, N: number, parts: LinearPart[]): string =>
    quantized
      ? quantizedLinear(g, x, name, assembleRows(parts, K, N), N, K, opts)
      : g.op('MatMul', [x, g.weight(`${name}.weight_t`, assembleTransposed(parts, K, N), [K, N])])
  const part = (src: Float32Array, out: number, inn: number, at = 0, mapOut = ident, mapIn = ident) => ({
    src,
    out,
    inn,
    at,
    mapOut,
    mapIn
  })
  const activate = (x: string): string => {
    if (cfg.activation === 'gelu_tanh') return g.op('FastGelu', [x], {}, 'com.microsoft')
    if (cfg.activation === 'gelu') return g.op('Gelu', [x], {}, 'com.microsoft')
    return g.op('Mul', [x, g.op('Sigmoid', [x])])
  }

  const alibi = cfg.positions === 'alibi' ? alibiInputs(g, layout) : null
  const addBias = (y: string, name: string, b: Float32Array | undefined): string =>
    b ? g.op('Add', [y, g.weight(name, b, [b.length])]) : y
  const I = cfg.intermediateSize
  const mlp = (
    l: number,
    p: string,
    x2: string,
    read: ReturnType<typeof layerReader>,
    lw: LayerWeights
  ): string => {
    let act: string
    if (cfg.mlp === 'gated') {
      // gate and up share one MatMul, columns [gate | up]
      let gu = linear(x2, `${p}.gate_up`, H, 2 * I, [
        part(read.weight('gate_proj', I), I, H, 0),
        part(read.weight('up_proj', I), I, H, I)
      ])
      const gb = read.bias('gate_proj', I)
      const ub = read.bias('up_proj', I)
      if (gb || ub) {
        const b = new Float32Array(2 * I)
        if (gb) b.set(gb, 0)
        if (ub) b.set(ub, I)
        gu = addBias(gu, `${p}.gate_up.bias`, b)
      }
      let [gate, up] = g.node('Split', [gu, g.int64(`${p}.gate_up.split`, [I, I])], 2, { axis: -1 }) as [
        string,
        string
      ]
      gate = lora(l, 'gate_proj', x2, gate)
      up = lora(l, 'up_proj', x2, up)
      act = g.op('Mul', [activate(gate), up])
    } else {
      let up = linear(x2, `${p}.up`, H, I, [part(read.weight('up_proj', I), I, H, 0)])
      up = addBias(up, `${p}.up.bias`, read.bias('up_proj', I))
      act = activate(lora(l, 'up_proj', x2, up))
    }
    let d = linear(act, `${p}.down`, I, H, [part(read.weight('down_proj', H), H, I)])
    d = addBias(d, `${p}.down.bias`, read.bias('down_proj', H))
    d = lora(l, 'down_proj', act, d)
    return lw.postMlpNorm ? norm(d, lw.postMlpNorm) : d
  }

  if (family.embedNorm) h = norm(h, family.embedNorm)
  // A residual add still owed to h: the next norm that reads h does it in the same kernel
  // (fusedResidualNorm), which saves one kernel per residual add that a norm follows.
  let owed: string | undefined
  const normAfterResidual = (name: string): string => {
    if (owed === undefined) return norm(h, name)
    const r = fusedResidualNorm(g, cfg.norm, h, owed, {
      name,
      weight: normWeight(name, H),
      bias: () => {
        const bn = name.replace(/weight$/, 'bias')
        return weights.get(bn, [H])
      },
      epsilon: cfg.rmsNormEps
    })
    owed = undefined
    h = r.sum
    return r.normed
  }
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}`
    const lw = family.layer(cfg, l)
    const read = layerReader(weights, lw)
    const x = normAfterResidual(lw.inputNorm)

    // q, k and v share one MatMul (one read of x, one kernel); columns [q | k | v], head-padded
    const qkvCols = qOut + 2 * kvOut
    const parts: [Projection, number, number][] = [
      ['q_proj', cfg.numHeads * D, 0],
      ['k_proj', cfg.numKvHeads * D, qOut],
      ['v_proj', cfg.numKvHeads * D, qOut + kvOut]
    ]
    let qkv = linear(
      x,
      `${p}.qkv`,
      H,
      qkvCols,
      parts.map(([t, out, col]) => part(read.weight(t, out), out, H, col, layout.padFeature))
    )
    const biases = parts.map(([t, out]) => read.bias(t, out))
    if (biases.some((b) => b !== undefined)) {
      const bias = new Float32Array(qkvCols)
      parts.forEach(([, out, col], j) => {
        const b = biases[j]
        if (b) for (let i = 0; i < out; i++) bias[col + layout.padFeature(i)] = b[i]!
      })
      qkv = g.op('Add', [qkv, g.weight(`${p}.qkv.bias`, bias, [qkvCols])])
    }
    const split = g.int64(`${p}.qkv.split`, [qOut, kvOut, kvOut])
    let [q, k, v] = g.node('Split', [qkv, split], 3, { axis: -1 }) as [string, string, string]
    q = lora(l, 'q_proj', x, q)
    k = lora(l, 'k_proj', x, k)
    v = lora(l, 'v_proj', x, v)
    if (lw.qNorm && lw.kNorm) {
      q = headNorm(q, lw.qNorm, cfg.numHeads)
      k = headNorm(k, lw.kNorm, cfg.numKvHeads)
    }

    if (alibi) {
      q = g.op('Add', [q, alibi.q])
      k = g.op('Add', [k, alibi.kAdd()])
    }

    const window = cfg.layerWindows[l] ?? null
    const local = localRope && window !== null
    const [attn] = g.node(
      'GroupQueryAttention',
      [
        q,
        k,
        v,
        pastKey(l),
        pastValue(l),
        SEQLENS_K,
        TOTAL_SEQ_LEN,
        alibi ? '' : local ? ROPE_COS_LOCAL : ROPE_COS,
        alibi ? '' : local ? ROPE_SIN_LOCAL : ROPE_SIN
      ],
      [g.tmp('attn'), presentKey(l), presentValue(l)],
      {
        num_heads: cfg.numHeads,
        kv_num_heads: cfg.numKvHeads,
        do_rotary: alibi ? 0 : 1,
        rotary_interleaved: 0,
        // the real head size's scale (padded dims are zero and add nothing to q·k)
        scale: { float: cfg.attentionScale },
        // the window is really computed, whatever the prompt length: a query sees its last `window`
        // keys (itself included), transformers' sliding mask; checked against the reference
        ...(window !== null ? { local_window_size: window } : {}),
        ...(cfg.attnSoftcap !== null ? { softcap: { float: cfg.attnSoftcap } } : {})
      },
      'com.microsoft'
    )
    for (const name of [pastKey(l), pastValue(l)])
      g.input(name, DT.FLOAT, ['batch', cfg.numKvHeads, 'capacity', Dp])
    g.node('GatherElements', [presentKey(l), newIndex], [newKey(l)], { axis: 2 })
    g.node('GatherElements', [presentValue(l), newIndex], [newValue(l)], { axis: 2 })
    for (const name of [newKey(l), newValue(l)])
      g.output(name, DT.FLOAT, ['batch', cfg.numKvHeads, 'seq', Dp])

    const qIn = cfg.numHeads * D
    const wo = read.weight('o_proj', H)
    let o = linear(attn!, `${p}.o`, qOut, H, [part(wo, H, qIn, 0, ident, layout.padFeature)])
    o = addBias(o, `${p}.o.bias`, read.bias('o_proj', H))
    o = lora(l, 'o_proj', attn!, o)
    if (lw.postAttnNorm) o = norm(o, lw.postAttnNorm)

    if (cfg.parallelBlock) {
      // Falcon: attention and MLP both read the layer input (one shared norm or one each)
      const x2 = lw.mlpNorm === lw.inputNorm ? x : norm(h, lw.mlpNorm)
      owed = g.op('Add', [mlp(l, p, x2, read, lw), o])
    } else {
      owed = o
      const x2 = normAfterResidual(lw.mlpNorm)
      owed = mlp(l, p, x2, read, lw)
    }
  }
  if (owed !== undefined) h = g.op('Add', [h, owed])

  // one position per row: [batch, seq, H] → [batch·seq, H] → [batch, H]
  const rowsFlat = g.op('Reshape', [h, g.int64('last.flat_shape', [-1, H])])
  const flat = g.op('Gather', [rowsFlat, LAST_INDEX], { axis: 0 })
  const xf = norm(flat, family.finalNorm)
  // Gemm with transB reads the checkpoint's [vocab, H] layout directly, so a tied lm_head shares
  // the embedding initializer instead of storing a transposed copy
  const V = cfg.vocabSize
  // read (again) here rather than held through the build: the source may read each tensor from disk
  const headName = cfg.tieWordEmbeddings ? embedName : family.lmHead
  const cap = cfg.finalSoftcap
  const out = cap === null ? LOGITS : g.tmp('logits_raw')
  if (quantized) {
    // [vocab, H] is MatMulNBits' [N, K] already; a tied head gets its own quantized copy (the
    // embedding Gather keeps reading fp32 rows)
    // the head runs on one position per row even in a prompt pass: MatMulNBits in both graphs
    const head = { ...opts, prefill: false }
    const logits = quantizedLinear(g, xf, 'lm_head', weights.get(headName, [V, H]), V, H, head)
    g.node('Identity', [logits], [out])
  } else {
    const head = cfg.tieWordEmbeddings ? embed : g.weight(headName, weights.get(headName, [V, H]), [V, H])
    g.node('Gemm', [xf, head], [out], { transB: 1 })
  }
  if (cap !== null) {
    // cap · tanh(logits / cap), as Gemma 2 computes it
    const c = g.weight('final.softcap', Float32Array.of(cap), [])
    g.node('Mul', [g.op('Tanh', [g.op('Div', [out, c])]), c], [LOGITS])
  }
  g.output(LOGITS, DT.FLOAT, ['batch', cfg.vocabSize])
}

export const OPSETS = { '': 17, 'com.microsoft': 1 }
