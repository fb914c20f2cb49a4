// QLoRA-style frozen base weights (`openlora train --base-format int8|int4`): each base Linear
// (projections and lm_head, as serving quantizes them; embeddings, norms and biases stay fp32) is
// stored in the training graph as serving's own quantized bytes (graph/quantize.ts int8,
// graph/quantize4.ts int4: same blocks, scales and zero points, so the adapter trains against the
// weights an int8/int4 node serves it on) and dequantized inside the graph by ONNX
// DequantizeLinear with block_size (opset 21; ORT's CPU kernel takes uint8 and packed uint4) into
// the frozen-linear seam (Tape.frozenLinear: W [out, in] in checkpoint layout, Gemm transB forward,
// dx = dy·W backward). The fp32 W exists only while a product uses it: the forward dequantizes it
// and the backward dequantizes it again, so no fp32 copy of the base lives from the forward to the
// backward (each waits for its product's other operand: scalesAfter). Dequantization is exact
// in fp32 ((q − zp) is a small integer, one rounding by the scale), so the loss and LoRA
// gradients equal those of the fp32 graph on the dequantized checkpoint to summation order
// (test/unit/training-qlora.test.ts).
import { DT, type GraphBuilder } from '../graph/proto.ts'
import { dequantize, int8BlockFor, quantizeRows } from '../graph/quantize.ts'
import { dequantize4, INT4_BLOCK, quantizeRows4 } from '../graph/quantize4.ts'
import type { ModelConfig } from '../model/config.ts'
import type { ModuleSpec } from '../model/families/types.ts'
import { modelLayout, paddedIn } from '../model/layout.ts'
import type { WeightFormat } from '../weight-format.ts'

/** DequantizeLinear's block_size needs opset 21 */
export const QUANTIZED_OPSET = 21

export type QuantizedFormat = Exclude<WeightFormat, 'fp32'>

/** One Linear's weight as serving stores it, laid out for DequantizeLinear. */
export interface QuantizedBase {
  format: QuantizedFormat
  /** output features (rows) */
  N: number
  /** input features of the training graph's weight (the checkpoint's) */
  K: number
  /** serving's K: with head padding (o_proj of a padded-head model) wider than K */
  Kp: number
  blockSize: number
  /** blocks per row (the last may run past Kp: serving pads it) */
  kb: number
  /** the codes, [N, kb · blockSize] uint8 (int8, zero point 128) or uint4 (int4) */
  codes: Uint8Array
  /** [N, kb] */
  scales: Float32Array
  /** [N, kb] in ONNX's layout (uint8, or uint4 packed across rows) */
  zeroPoints: Uint8Array
  /** column c of the training weight is column cols[c] of serving's [N, kb · blockSize]; null: c itself */
  cols: number[] | null
}

/** Serving's quantization of rows [N, K]; `padIn` places column c at padIn.map(c) of a Kp-wide row. */
export function quantizeBase(
  w: Float32Array,
  N: number,
  K: number,
  format: QuantizedFormat,
  padIn?: { Kp: number; map: (c: number) => number }
): QuantizedBase {
  const Kp = padIn?.Kp ?? K
  let rows = w
  let cols: number[] | null = null
  if (padIn && (Kp !== K || Array.from({ length: K }, (_, c) => padIn.map(c)).some((p, c) => p !== c))) {
    cols = Array.from({ length: K }, (_, c) => padIn.map(c))
    rows = new Float32Array(N * Kp)
    for (let n = 0; n < N; n++) for (let c = 0; c < K; c++) rows[n * Kp + cols[c]!] = w[n * K + c]!
  }
  if (format === 'int4') {
    const ql = quantizeRows4(rows, N, Kp, INT4_BLOCK)
    const kb = ql.scales.length / N
    // serving packs each row's zero points on their own (ceil(kb/2) bytes); ONNX packs the
    // [N, kb] tensor contiguously, which differs when kb is odd
    const zpRow = Math.ceil(kb / 2)
    const zeroPoints = new Uint8Array(Math.ceil((N * kb) / 2))
    for (let n = 0; n < N; n++)
      for (let b = 0; b < kb; b++) {
        const i = n * zpRow * 2 + b
        const z = i & 1 ? ql.zeroPoints[i >> 1]! >> 4 : ql.zeroPoints[i >> 1]! & 0x0f
        const j = n * kb + b
        zeroPoints[j >> 1]! |= j & 1 ? z << 4 : z
      }
    return { format, N, K, Kp, blockSize: ql.blockSize, kb, codes: ql.q, scales: ql.scales, zeroPoints, cols }
  }
  const ql = quantizeRows(rows, N, Kp, int8BlockFor(Kp))
  const kb = ql.scales.length / N
  return {
    format,
    N,
    K,
    Kp,
    blockSize: ql.blockSize,
    kb,
    codes: ql.q,
    scales: ql.scales,
    zeroPoints: new Uint8Array(N * kb).fill(128),
    cols
  }
}

/**
 * The weight [N, K] the quantized base represents, by the quantizer's own dequantizer (what the
 * tests build an fp32 checkpoint from).
 */
export function dequantizeBase(
  w: Float32Array,
  N: number,
  K: number,
  format: QuantizedFormat,
  padIn?: { Kp: number; map: (c: number) => number }
): Float32Array {
  const qb = quantizeBase(w, N, K, format, padIn)
  const full =
    format === 'int4'
      ? dequantize4({
          q: qb.codes,
          scales: qb.scales,
          zeroPoints: servingZeroPoints(qb),
          K: qb.Kp,
          N,
          blockSize: qb.blockSize
        })
      : dequantize({ q: qb.codes, scales: qb.scales, K: qb.Kp, N, blockSize: qb.blockSize })
  const out = new Float32Array(N * K)
  for (let n = 0; n < N; n++)
    for (let c = 0; c < K; c++) out[n * K + c] = full[n * qb.Kp + (qb.cols ? qb.cols[c]! : c)]!
  return out
}

/** The per-row zero-point packing quantize4.ts uses, back from ONNX's contiguous one. */
export function servingZeroPoints(qb: QuantizedBase): Uint8Array {
  const zpRow = Math.ceil(qb.kb / 2)
  const out = new Uint8Array(qb.N * zpRow)
  for (let n = 0; n < qb.N; n++)
    for (let b = 0; b < qb.kb; b++) {
      const j = n * qb.kb + b
      const z = j & 1 ? qb.zeroPoints[j >> 1]! >> 4 : qb.zeroPoints[j >> 1]! & 0x0f
      const i = n * zpRow * 2 + b
      out[i >> 1]! |= i & 1 ? z << 4 : z
    }
  return out
}

/** The graph's initializers of one quantized weight, and a fresh DequantizeLinear per call. */
export function quantizedWeight(g: GraphBuilder, name: string, qb: QuantizedBase): (after: string) => string {
  // uint4: two codes a byte, low nibble first, which is MatMulNBits' packing too
  const type = qb.format === 'int4' ? DT.UINT4 : DT.UINT8
  const width = qb.kb * qb.blockSize
  const codes = g.bytes(`${name}.codes`, qb.codes, [qb.N, width], type)
  const scales = g.weight(`${name}.scales`, qb.scales, [qb.N, qb.kb])
  // head padding moves columns (Gather them back); a last block past K is cut off (Slice)
  const cols = qb.cols ? g.int64(`${name}.cols`, qb.cols) : null
  const cut = !cols && width !== qb.K ? [0, qb.K, 1].map((v, i) => g.int64(`${name}.cut${i}`, [v])) : null
  const zp = g.bytes(`${name}.zp`, qb.zeroPoints, [qb.N, qb.kb], type)
  return (after: string) => {
    const w = g.op('DequantizeLinear', [codes, scalesAfter(g, scales, after), zp], {
      axis: 1,
      block_size: qb.blockSize
    })
    if (cols) return g.op('Gather', [w, cols], { axis: 1 })
    return cut ? g.op('Slice', [w, ...cut]) : w
  }
}

/**
 * The scales, times exactly 1 computed from one element of `after` (the 2-D activation or
 * gradient the product multiplies). ORT runs a node whose inputs are all initializers as early as
 * it likes, which would dequantize every weight at the start of a run and keep them all alive;
 * this data dependency (three one-element nodes) makes each dequantization wait for its product's
 * other operand. x·0 + 1 is exactly 1 for every finite x, and ×1 changes no scale.
 */
function scalesAfter(g: GraphBuilder, scales: string, after: string): string {
  const first = g.op('Slice', [after, g.int64(g.tmp('zero2'), [0, 0]), g.int64(g.tmp('one2'), [1, 1])])
  const zero = g.op('Mul', [first, g.weight(g.tmp('zero'), Float32Array.of(0), [])])
  const one = g.op('Add', [zero, g.weight(g.tmp('one'), Float32Array.of(1), [])])
  return g.op('Mul', [scales, one])
}

/**
 * Serving's input-feature layout of a module (graph/decoder.ts): o_proj reads the head-padded
 * attention output, so its blocks run over padded rows; every other module's K is the checkpoint's.
 */
export function servingPadIn(
  cfg: ModelConfig,
  parts: ModuleSpec['parts'] | null
): { Kp: number; map: (c: number) => number } | undefined {
  if (!parts?.some((p) => paddedIn(p.proj))) return undefined
  const layout = modelLayout(cfg)
  return { Kp: cfg.numHeads * layout.paddedHeadDim, map: layout.padFeature }
}

/**
 * The training graph's frozen weights over a quantized base: for rows w [N, K] (fused modules' rows
 * in the graph's order; quantization is per row, so a row order changes no code), a FrozenWeight
 * for Tape.frozenLinear that dequantizes them afresh at each use. `parts` (null for lm_head) says
 * whether serving pads the module's inputs.
 */
export function quantizedBase(g: GraphBuilder, cfg: ModelConfig, format: QuantizedFormat) {
  return (
    name: string,
    w: Float32Array,
    N: number,
    K: number,
    parts: ModuleSpec['parts'] | null
  ): ((after: string) => string) =>
    quantizedWeight(g, name, quantizeBase(w, N, K, format, servingPadIn(cfg, parts)))
}
