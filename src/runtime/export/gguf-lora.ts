// PEFT LoRA adapter → llama.cpp GGUF LoRA adapter (convert_lora_to_gguf.py's output): metadata
// general.type = adapter, adapter.type = lora, adapter.lora.alpha, and per target the pair
// blk.N.<tensor>.weight.lora_a [r, in] / .lora_b [out, r] (row-major), q/k B rows permuted like the
// base weights.
import { NotSupportedError } from '../../common/errors.ts'
import { createLogger } from '../../common/log.ts'
import {
  GgufError,
  type GgufKv,
  type GgufTensorIn,
  GgufType,
  type TensorDtype,
  writeGguf
} from '../formats/gguf.ts'
import type { ModelConfig } from '../model/config.ts'
import { PROJ_TO_GGUF, permuteRotaryRows } from './gguf-llama.ts'

const log = createLogger('gguf-export')

/** The parts of a PeftAdapter (src/runtime/adapters/peft.ts, loadPeftAdapter) the export reads. */
export interface LoraForExport {
  config: { alpha: number }
  layers: Map<number, Map<string, { A: Float32Array; B: Float32Array; r: number; scale: number }>>
}

/**
 * Writes a LoRA adapter as llama.cpp's GGUF adapter. llama.cpp scales each pair by
 * adapter.lora.alpha / rank; where PEFT's scale differs (rsLoRA, alpha_pattern) the difference is
 * folded into B so both engines compute the same delta.
 */
export async function exportLoraToGguf(
  adapter: LoraForExport,
  cfg: ModelConfig,
  outFile: string,
  opts: { dtype?: TensorDtype; name?: string } = {}
): Promise<{ bytes: number; tensors: number; alpha: number }> {
  const dtype = opts.dtype ?? 'F32'
  if ([...adapter.layers.values()].every((m) => m.size === 0))
    throw new GgufError('the adapter has no LoRA weights to export')
  const alpha = adapter.config.alpha
  const tensors: GgufTensorIn[] = []
  for (const layer of [...adapter.layers.keys()].sort((a, b) => a - b)) {
    for (const [target, w] of adapter.layers.get(layer)!) {
      const g = PROJ_TO_GGUF[target]
      if (g === undefined) throw new NotSupportedError(`LoRA target ${target} has no GGUF tensor`)
      const inF = w.A.length / w.r
      const outF = w.B.length / w.r
      let B = w.B
      const fold = w.scale / (alpha / w.r)
      if (Math.abs(fold - 1) > 1e-6) B = B.map((v) => v * fold)
      if (target === 'q_proj') B = permuteRotaryRows(B, outF, w.r, cfg.numHeads)
      else if (target === 'k_proj') B = permuteRotaryRows(B, outF, w.r, cfg.numKvHeads)
      const base = `blk.${layer}.${g}.weight`
      tensors.push({ name: `${base}.lora_a`, shape: [w.r, inF], dtype, data: w.A })
      tensors.push({ name: `${base}.lora_b`, shape: [outF, w.r], dtype, data: B })
    }
  }
  const metadata: GgufKv[] = [
    { key: 'general.architecture', type: GgufType.STRING, value: 'llama' },
    { key: 'general.type', type: GgufType.STRING, value: 'adapter' },
    { key: 'general.name', type: GgufType.STRING, value: opts.name ?? 'lora' },
    { key: 'adapter.type', type: GgufType.STRING, value: 'lora' },
    { key: 'adapter.lora.alpha', type: GgufType.FLOAT32, value: alpha }
  ]
  const { bytes } = await writeGguf(outFile, metadata, tensors)
  log.info('wrote GGUF LoRA adapter', { file: outFile, bytes, tensors: tensors.length, alpha })
  return { bytes, tensors: tensors.length, alpha }
}
