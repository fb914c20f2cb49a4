// PEFT LoRA adapter → llama.cpp GGUF LoRA adapter (convert_lora_to_gguf.py's output): metadata
// general.type = adapter, adapter.type = lora, adapter.lora.alpha, and per target the pair
// blk.N.<tensor>.weight.lora_a [r, in] / .lora_b [out, r] (row-major), for the llama.cpp
// architecture of the model's family (gguf-arch.ts): q/k B rows permuted like the base weights on
// `llama`, the query scale folded into q's B where the base export folds it into q_proj, and LoRAs
// of projections llama.cpp fuses (attn_qkv, ffn_up = [gate; up]) stacked into one LoRA of the fused
// tensor: A = [A₁; A₂; …], B = block-diagonal, which computes each part's delta exactly.
import { NotSupportedError } from '../../common/errors.ts'
import { createLogger } from '../../common/log.ts'
import { GgufError, type GgufKv, GgufType, type TensorDtype } from '../formats/gguf.ts'
import { type GgufTensorIn, writeGguf } from '../formats/gguf-write.ts'
import { type ModelConfig, projectionShape } from '../model/config.ts'
import { llamaCppArch } from './gguf-arch.ts'
import { PROJ_TO_GGUF, permuteRotaryRows } from './gguf-llama.ts'

const log = createLogger('gguf-export')

/** The parts of a PeftAdapter (src/runtime/adapters/peft.ts, loadPeftAdapter) the export reads. */
export interface LoraForExport {
  config: { alpha: number }
  layers: Map<number, Map<string, { A: Float32Array; B: Float32Array; r: number; scale: number }>>
}

type Pair = { A: Float32Array; B: Float32Array; r: number; scale: number }

/** llama.cpp's tensor for each projection, and the projections it holds in row order. */
function tensorGroups(cfg: ModelConfig): Map<string, string[]> {
  const spec = llamaCppArch(cfg)
  const g = new Map<string, string[]>()
  if (spec.fusedQkv) g.set('attn_qkv', ['q_proj', 'k_proj', 'v_proj'])
  else for (const p of ['q_proj', 'k_proj', 'v_proj']) g.set(PROJ_TO_GGUF[p]!, [p])
  g.set('attn_output', ['o_proj'])
  if (cfg.mlp === 'gated' && spec.fusedGateUp) g.set('ffn_up', ['gate_proj', 'up_proj'])
  else {
    if (cfg.mlp === 'gated') g.set('ffn_gate', ['gate_proj'])
    g.set('ffn_up', ['up_proj'])
  }
  g.set('ffn_down', ['down_proj'])
  return g
}

/**
 * Writes a LoRA adapter as llama.cpp's GGUF adapter. llama.cpp scales each pair by
 * adapter.lora.alpha / rank; where PEFT's scale differs (rsLoRA, alpha_pattern, a stacked rank)
 * the difference is folded into B so both engines compute the same delta.
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
  const spec = llamaCppArch(cfg)
  const groups = tensorGroups(cfg)
  const alpha = adapter.config.alpha
  const tensors: GgufTensorIn[] = []
  for (const layer of [...adapter.layers.keys()].sort((a, b) => a - b)) {
    const targets = adapter.layers.get(layer)!
    for (const t of targets.keys()) {
      if (![...groups.values()].some((ps) => ps.includes(t)))
        throw new NotSupportedError(`LoRA target ${t} has no GGUF tensor`, { field: 'target', value: t })
    }
    for (const [g, projs] of groups) {
      const present = projs.filter((p) => targets.has(p))
      if (present.length === 0) continue
      const inF = projectionShape(cfg, projs[0]!)[0]
      const outs = projs.map((p) => projectionShape(cfg, p)[1])
      const R = present.reduce((a, p) => a + targets.get(p)!.r, 0)
      const A = new Float32Array(R * inF)
      const B = new Float32Array(outs.reduce((a, n) => a + n, 0) * R)
      let rAt = 0
      let rowAt = 0
      for (let i = 0; i < projs.length; i++) {
        const p = projs[i]!
        const w: Pair | undefined = targets.get(p)
        if (w !== undefined) {
          A.set(w.A, rAt * inF)
          let b = w.B
          if (spec.permuteQk && p === 'q_proj') b = permuteRotaryRows(b, outs[i]!, w.r, cfg.numHeads)
          else if (spec.permuteQk && p === 'k_proj') b = permuteRotaryRows(b, outs[i]!, w.r, cfg.numKvHeads)
          // llama.cpp multiplies by alpha / R; PEFT by w.scale (and the base export scales q)
          const k = (w.scale / (alpha / R)) * (p === 'q_proj' && !cfg.qkNorm ? spec.qScale : 1)
          for (let row = 0; row < outs[i]!; row++)
            for (let j = 0; j < w.r; j++) B[(rowAt + row) * R + rAt + j] = b[row * w.r + j]! * k
          rAt += w.r
        }
        rowAt += outs[i]!
      }
      const base = `blk.${layer}.${g}.weight`
      tensors.push({ name: `${base}.lora_a`, shape: [R, inF], dtype, data: A })
      tensors.push({ name: `${base}.lora_b`, shape: [rowAt, R], dtype, data: B })
    }
  }
  const metadata: GgufKv[] = [
    { key: 'general.architecture', type: GgufType.STRING, value: spec.arch },
    { key: 'general.type', type: GgufType.STRING, value: 'adapter' },
    { key: 'general.name', type: GgufType.STRING, value: opts.name ?? 'lora' },
    { key: 'adapter.type', type: GgufType.STRING, value: 'lora' },
    { key: 'adapter.lora.alpha', type: GgufType.FLOAT32, value: alpha }
  ]
  const { bytes } = await writeGguf(outFile, metadata, tensors)
  log.info('wrote GGUF LoRA adapter', { file: outFile, bytes, tensors: tensors.length, alpha })
  return { bytes, tensors: tensors.length, alpha }
}
