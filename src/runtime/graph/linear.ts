// How the decoder graph (decoder.ts) reads and lays out its Linear weights: a checkpoint's
// (possibly fused) modules split into projections, placed into fused, head-padded graph weights,
// and emitted as fp32 MatMul or as a quantized op (weight-format.ts); plus the fused residual norm.
import type { ModelConfig, Projection } from '../model/config.ts'
import type { LayerWeights } from '../model/families/types.ts'
import type { WeightFormat } from '../weight-format.ts'
import type { GraphBuilder } from './proto.ts'
import {
  dequantize,
  INT8_ACCURACY_LEVEL,
  INT8_BLOCK_MAX,
  int8BlockFor,
  type QuantizedLinear,
  quantizeRows
} from './quantize.ts'
import {
  dequantize4,
  INT4_ACCURACY_LEVEL,
  INT4_BLOCK,
  INT4_SUPERBLOCK,
  type Quantized4Linear,
  quantizeRows4
} from './quantize4.ts'

export interface WeightSource {
  /** the fp32 tensor of a checkpoint name; throws naming the tensor when it is missing */
  get(name: string, shape: number[]): Float32Array
  has(name: string): boolean
}

/** What a quantized Linear needs of the graph options (decoder.ts GraphOptions). */
export interface LinearOptions {
  /** default fp32; int8 / int4 build each projection and the lm_head as MatMulNBits (weight-format.ts) */
  weightFormat?: WeightFormat
  /**
   * int8 only: one block size (a power of two, 16–128) for every Linear instead of the widest
   * that divides each K (int8BlockFor). For the benchmark's A/B of padded 128 vs fitted blocks;
   * not a serving setting.
   */
  int8Block?: number
  /**
   * the prompt-pass graph of an int8/int4 model: its Linears as int8 GEMMs over the format's own
   * weights (prefillLinear); the lm_head stays MatMulNBits. Same inputs and outputs.
   */
  prefill?: boolean
}

/**
 * One checkpoint Linear weight [out, in] placed into a (possibly fused, head-padded) graph
 * weight: its output features land at `at + mapOut(o)`, its input features at `mapIn(i)`.
 */
export interface LinearPart {
  src: Float32Array
  out: number
  inn: number
  at: number
  mapOut: (i: number) => number
  mapIn: (i: number) => number
}

export const ident = (i: number) => i

/** The parts as MatMul's B, transposed: [K, N] row-major. */
export function assembleTransposed(parts: readonly LinearPart[], K: number, N: number): Float32Array {
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
export function assembleRows(parts: readonly LinearPart[], K: number, N: number): Float32Array {
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

/**
 * Reads a layer's projections out of its checkpoint modules: a plain Linear is its tensor as
 * stored; a fused one (Phi-3's qkv_proj, gate_up_proj) is read once and its rows split.
 */
export function layerReader(weights: WeightSource, lw: LayerWeights) {
  const fused = new Map<string, Float32Array>()
  const find = (proj: Projection) => {
    for (const m of lw.modules) {
      const part = m.parts.find((p) => p.proj === proj)
      if (part) return { m, part }
    }
    throw new Error(`family layer has no module for ${proj}`)
  }
  const rows = (proj: Projection, n: number, suffix: 'weight' | 'bias'): Float32Array => {
    const { m, part } = find(proj)
    const cols = suffix === 'weight' ? m.cols : 1
    const shape = suffix === 'weight' ? [m.rows, m.cols] : [m.rows]
    if (m.parts.length === 1 && m.rows === n) return weights.get(`${m.path}.${suffix}`, shape)
    const key = `${m.path}.${suffix}`
    let all = fused.get(key)
    if (!all) fused.set(key, (all = weights.get(key, shape)))
    const out = new Float32Array(n * cols)
    for (let i = 0; i < n; i++)
      out.set(all.subarray(part.rowOf(i) * cols, (part.rowOf(i) + 1) * cols), i * cols)
    return out
  }
  return {
    weight: (proj: Projection, n: number) => rows(proj, n, 'weight'),
    bias: (proj: Projection, n: number) => (find(proj).m.bias ? rows(proj, n, 'bias') : undefined)
  }
}

/**
 * h + y and the norm of that sum in one kernel: com.microsoft SkipSimplifiedLayerNormalization
 * (RMS norms) or SkipLayerNormalization (LayerNorm with bias), whose optional output 3 is the sum
 * itself (the residual stream the next layer adds to). Both sum and normalize in fp32, as the
 * separate Add and (Simplified)LayerNormalization did.
 */
export function fusedResidualNorm(
  g: GraphBuilder,
  kind: ModelConfig['norm'],
  h: string,
  y: string,
  n: { name: string; weight: Float32Array; bias: () => Float32Array; epsilon: number }
): { sum: string; normed: string } {
  const H = n.weight.length
  const w = g.weight(n.name, n.weight, [H])
  const layer = kind === 'layernorm'
  const inputs = layer ? [y, h, w, g.weight(n.name.replace(/weight$/, 'bias'), n.bias(), [H])] : [y, h, w]
  const [normed, , , sum] = g.node(
    layer ? 'SkipLayerNormalization' : 'SkipSimplifiedLayerNormalization',
    inputs,
    [g.tmp('normed'), '', '', g.tmp('residual')],
    { epsilon: { float: n.epsilon } },
    'com.microsoft'
  )
  return { sum: sum!, normed: normed! }
}

/**
 * What of a weight format shapes the built graph, for the build-cache key: a change of block
 * size or accuracy level must never reuse a graph built with the old one. fp32 has no key (its
 * cache keys predate formats).
 */
export function weightFormatKey(format: WeightFormat, int8Block?: number): string | undefined {
  // int8 blocks are the widest power of two ≤ INT8_BLOCK_MAX dividing K (quantize.ts int8BlockFor),
  // or one fixed size for every Linear when int8Block is set (the scheme before block fitting)
  if (format === 'int8')
    return int8Block === undefined
      ? `int8-bfit${INT8_BLOCK_MAX}-a${INT8_ACCURACY_LEVEL}`
      : `int8-b${int8Block}-a${INT8_ACCURACY_LEVEL}`
  // `-sb8`: scales are q · d in superblocks of 8 blocks (quantize4.ts unitFor), which the native
  // tiles hold in 10 bits a block; `-h` builds (free fp16 scales) are rebuilt
  if (format === 'int4') return `int4-zp-b${INT4_BLOCK}-a${INT4_ACCURACY_LEVEL}-sb${INT4_SUPERBLOCK}`
  return undefined
}

/**
 * One Linear (rows [N, K] row-major) as com.microsoft MatMulNBits in the given quantized format:
 * int8 symmetric (implicit zero point 128) or int4 with per-block zero points. Both quantize the
 * activations to int8 per block (accuracy_level 4) for int8 dot products, as llama.cpp's Q8_0 /
 * Q4_0 paths do. With `prefill` the same quantized weights go to prefillLinear instead.
 */
export function quantizedLinear(
  g: GraphBuilder,
  x: string,
  name: string,
  rows: Float32Array,
  N: number,
  K: number,
  opts: LinearOptions
): string {
  if (opts.weightFormat === 'int4') {
    const ql: Quantized4Linear = quantizeRows4(rows, N, K)
    if (opts.prefill) return prefillLinear(g, x, name, dequantize4(ql), N, K)
    const kb = ql.scales.length / N
    return g.op(
      'MatMulNBits',
      [
        x,
        g.bytes(`${name}.q4`, ql.q, [N, kb, ql.blockSize / 2]),
        g.weight(`${name}.scales`, ql.scales, [N, kb]),
        g.bytes(`${name}.zp4`, ql.zeroPoints, [ql.zeroPoints.length])
      ],
      { K, N, bits: 4, block_size: ql.blockSize, accuracy_level: INT4_ACCURACY_LEVEL },
      'com.microsoft'
    )
  }
  const ql: QuantizedLinear = quantizeRows(rows, N, K, opts.int8Block ?? int8BlockFor(K))
  if (opts.prefill) return prefillLinear(g, x, name, dequantize(ql), N, K)
  const kb = ql.scales.length / N
  return g.op(
    'MatMulNBits',
    [x, g.bytes(`${name}.q8`, ql.q, [N, kb, ql.blockSize]), g.weight(`${name}.scales`, ql.scales, [N, kb])],
    { K, N, bits: 8, block_size: ql.blockSize, accuracy_level: INT8_ACCURACY_LEVEL },
    'com.microsoft'
  )
}

/**
 * The prompt-pass form of a quantized Linear (issue 17): com.microsoft DynamicQuantizeMatMul over
 * int8 weights [K, N] with one scale per output column, i.e. the format's own dequantized weights
 * `w` ([N, K]) rounded once more to int8 per column. Why: ORT's MatMulNBits GEMM for many rows is
 * slow on x86 (1B shape, 2 threads, M = 512: 4-bit 84-255 ms, 8-bit 88-173 ms per 2048×8192
 * Linear), while this op runs MLAS's u8s8 GEMM (VNNI/AMX), 23-67 ms in the same runs
 * (`npm run bench:kernels`). The extra rounding (step = column max / 127) is ~10× finer than the
 * int4 steps it rounds, so the prompt pass computes the format's weights, not others; its
 * activations are quantized per tensor (uint8, asymmetric) where MatMulNBits quantizes per block.
 */
export function prefillLinear(
  g: GraphBuilder,
  x: string,
  name: string,
  w: Float32Array,
  N: number,
  K: number
) {
  const q = new Uint8Array(K * N)
  const scales = new Float32Array(N)
  for (let n = 0; n < N; n++) {
    let max = 0
    for (let k = 0; k < K; k++) max = Math.max(max, Math.abs(w[n * K + k]!))
    const scale = Math.fround(max / 127)
    scales[n] = scale
    if (scale === 0) continue
    // two's complement int8 bytes, [K, N] as MatMul's B
    for (let k = 0; k < K; k++) q[k * N + n] = Math.round(w[n * K + k]! / scale) & 0xff
  }
  return g.op(
    'DynamicQuantizeMatMul',
    [x, g.int8(`${name}.s8`, q, [K, N]), g.weight(`${name}.s8scales`, scales, [N])],
    {},
    'com.microsoft'
  )
}
