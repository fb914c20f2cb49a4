// How a base model's projection and lm_head weights are built into its graph (graph/decoder.ts).
// Kept apart from the graph builder so config code can name the formats without loading it.
import { InvalidParametersError } from '../common/errors.ts'

/**
 * fp32: MatMul over the checkpoint's weights as fp32 — exact (the reference tests' 1e-4).
 * int8: MatMulNBits over weights block-quantized to int8 (graph/quantize.ts), with int8 dot
 * products: a quarter of the weight bytes per token and VNNI throughput on x86; logits move by
 * about what llama.cpp's Q8_0 moves them. Embeddings, norms, attention and LoRA stay fp32.
 * int4: MatMulNBits over 4-bit codes in blocks of 32 with a scale and a zero point each
 * (graph/quantize4.ts): an eighth of the fp32 bytes plus 5 bytes a block; its weight error is at
 * most llama.cpp Q4_0's on the same weights (test/unit/runtime-int4.test.ts).
 */
export type WeightFormat = 'fp32' | 'int8' | 'int4'
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['fp32', 'int8', 'int4']

export function parseWeightFormat(v: unknown): WeightFormat {
  if (v === undefined || v === null) return 'fp32'
  if (typeof v === 'string' && (WEIGHT_FORMATS as readonly string[]).includes(v)) return v as WeightFormat
  throw new InvalidParametersError(
    `weight format ${JSON.stringify(v)} is not supported; allowed: ${WEIGHT_FORMATS.join(', ')}`,
    { field: 'weightFormat', value: v }
  )
}
