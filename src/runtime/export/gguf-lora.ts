// PEFT LoRA adapter → llama.cpp GGUF LoRA adapter (convert_lora_to_gguf.py's output): metadata
// general.type = adapter, adapter.type = lora, adapter.lora.alpha, and per target the pair
// blk.N.<tensor>.weight.lora_a [r, in] / .lora_b [out, r] (row-major), q/k B rows permuted like the
// base weights.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
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
import { loadSafetensors } from '../formats/safetensors.ts'
import { type ModelConfig, projectionShape } from '../model/config.ts'
import { PROJ_TO_GGUF, permuteRotaryRows } from './gguf-llama.ts'

const log = createLogger('gguf-export')
const MAX_CONFIG_BYTES = 1024 * 1024

/** The parts of a loaded PEFT adapter the export reads (src/runtime/adapters/peft.ts shape). */
export interface LoraForExport {
  /** lora_alpha from adapter_config.json, if given */
  alpha?: number
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
  const first = [...adapter.layers.values()].flatMap((m) => [...m.values()])[0]
  if (first === undefined) throw new GgufError('the adapter has no LoRA weights to export')
  const alpha = adapter.alpha ?? first.scale * first.r
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

type LoraPair = { A: Float32Array; B: Float32Array; r: number; scale: number }

// PEFT matches rank_pattern / alpha_pattern keys as a regex against the end of the module name
function patternValue(patterns: unknown, module: string): number | undefined {
  if (typeof patterns !== 'object' || patterns === null) return undefined
  for (const [key, v] of Object.entries(patterns)) {
    if (typeof v === 'number' && new RegExp(`(.*\\.)?${key}$`).test(module)) return v
  }
  return undefined
}

/**
 * Reads a PEFT adapter directory (adapter_config.json + adapter_model.safetensors) into the shape
 * the export takes, with PEFT's own scale per pair (alpha / r, or alpha / sqrt(r) with rsLoRA).
 */
export async function readPeftForExport(dir: string, cfg: ModelConfig): Promise<LoraForExport> {
  const raw = await readFile(join(dir, 'adapter_config.json'))
  if (raw.length > MAX_CONFIG_BYTES)
    throw new GgufError(`adapter_config.json is over ${MAX_CONFIG_BYTES} bytes`)
  const c = JSON.parse(raw.toString('utf8')) as Record<string, unknown>
  if (c.use_dora === true)
    throw new NotSupportedError('DoRA adapters have no llama.cpp GGUF form; allowed: LoRA')
  if (c.fan_in_fan_out === true)
    throw new NotSupportedError('fan_in_fan_out adapters are not exported; allowed: false')
  const alpha = typeof c.lora_alpha === 'number' ? c.lora_alpha : 8 // PEFT's default lora_alpha
  const rslora = c.use_rslora === true
  const weights = await loadSafetensors(join(dir, 'adapter_model.safetensors'))
  const parts = new Map<
    string,
    { A?: Float32Array; B?: Float32Array; shapeA?: number[]; shapeB?: number[] }
  >()
  for (const [name, t] of weights) {
    const m =
      /^base_model\.model\.(model\.layers\.\d+\.(?:self_attn|mlp)\.\w+_proj)\.lora_([AB])\.weight$/.exec(name)
    if (m === null) throw new NotSupportedError(`adapter tensor "${name}" is not a LoRA pair on a projection`)
    const p = parts.get(m[1]) ?? {}
    if (m[2] === 'A') Object.assign(p, { A: t.data, shapeA: t.shape })
    else Object.assign(p, { B: t.data, shapeB: t.shape })
    parts.set(m[1], p)
  }
  const layers = new Map<number, Map<string, LoraPair>>()
  for (const [module, p] of parts) {
    const [, layerStr, target] = /^model\.layers\.(\d+)\.\w+\.(\w+_proj)$/.exec(module)!
    const layer = Number(layerStr)
    if (p.A === undefined || p.B === undefined || layer >= cfg.numLayers) {
      throw new GgufError(
        `adapter module ${module}: needs lora_A and lora_B on a layer below ${cfg.numLayers}`
      )
    }
    const [inF, outF] = projectionShape(cfg, target)
    const r = p.shapeA![0]
    if (p.shapeA![1] !== inF || p.shapeB![0] !== outF || p.shapeB![1] !== r) {
      throw new GgufError(
        `adapter module ${module}: lora_A [${p.shapeA}] / lora_B [${p.shapeB}] do not fit [r, ${inF}] / [${outF}, r]`
      )
    }
    const a = patternValue(c.alpha_pattern, module) ?? alpha
    const scale = rslora ? a / Math.sqrt(r) : a / r
    if (!layers.has(layer)) layers.set(layer, new Map())
    layers.get(layer)!.set(target, { A: p.A, B: p.B, r, scale })
  }
  return { alpha, layers }
}
