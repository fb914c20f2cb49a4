// The trainable LoRA state: which modules are adapted, their A/B tensors, where they start from
// (an existing PEFT adapter, or PEFT's default init) and how they are saved (a PEFT directory
// under PEFT's tensor names, which PEFT loads as is and `openlora adapter add` serves).
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadPeftAdapter } from '../adapters/peft.ts'
import { moduleName } from '../adapters/peft-config.ts'
import { rngFor } from '../fixtures/rng.ts'
import { adapterCidFromBytes } from '../formats/identity.ts'
import { encodeSafetensors, type WriteTensor } from '../formats/safetensors.ts'
import type { ModelConfig } from '../model/config.ts'
import { PROJECTIONS, type Projection } from '../model/families/types.ts'
import type { LoraModule } from './graph.ts'

export interface LoraState {
  modules: LoraModule[]
  A: Float32Array[]
  B: Float32Array[]
  /** adapter_config.json to save (the init adapter's own, or one PEFT writes for these options) */
  config: Record<string, unknown>
}

export interface FreshLora {
  rank: number
  alpha: number
  /** projections, or 'all-linear' (every attention and MLP Linear, never lm_head) */
  targets: Projection[] | 'all-linear'
  rslora: boolean
  seed: number
  baseModel: string
}

function shapeOf(cfg: ModelConfig, proj: Projection): [number, number] {
  const q = cfg.numHeads * cfg.headDim
  const kv = cfg.numKvHeads * cfg.headDim
  const H = cfg.hiddenSize
  const I = cfg.intermediateSize
  const io: Record<Projection, [number, number]> = {
    q_proj: [H, q],
    k_proj: [H, kv],
    v_proj: [H, kv],
    o_proj: [q, H],
    gate_proj: [H, I],
    up_proj: [H, I],
    down_proj: [I, H]
  }
  return io[proj]
}

/**
 * PEFT's default init: A Kaiming-uniform with a = √5 (PyTorch's nn.Linear default), which is
 * U(−1/√in, 1/√in); B zero, so the adapted model starts equal to the base. Our stream is seeded
 * per tensor (rngFor), so the same seed gives the same adapter; it is not PyTorch's stream.
 */
export function freshLora(cfg: ModelConfig, o: FreshLora): LoraState {
  const targets = o.targets === 'all-linear' ? [...PROJECTIONS] : o.targets
  const scale = o.rslora ? o.alpha / Math.sqrt(o.rank) : o.alpha / o.rank
  const modules: LoraModule[] = []
  const A: Float32Array[] = []
  const B: Float32Array[] = []
  for (let l = 0; l < cfg.numLayers; l++)
    for (const proj of targets) {
      const [inF, outF] = shapeOf(cfg, proj)
      const path = moduleName(l, proj)
      modules.push({ layer: l, proj, path, r: o.rank, inFeatures: inF, outFeatures: outF, scale })
      const rnd = rngFor(o.seed, `${path}.lora_A`)
      const bound = 1 / Math.sqrt(inF)
      A.push(Float32Array.from({ length: o.rank * inF }, () => (2 * rnd() - 1) * bound))
      B.push(new Float32Array(outF * o.rank))
    }
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: o.baseModel,
    r: o.rank,
    lora_alpha: o.alpha,
    use_rslora: o.rslora,
    target_modules: targets,
    lora_dropout: 0,
    bias: 'none',
    fan_in_fan_out: false,
    init_lora_weights: true,
    inference_mode: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    use_dora: false
  }
  return { modules, A, B, config }
}

/** Starts from an existing PEFT adapter (its config sets rank, alpha, targets and rsLoRA). */
export async function loraFromAdapter(cfg: ModelConfig, dir: string): Promise<LoraState> {
  const ad = await loadPeftAdapter(dir, cfg, { checkBaseModel: false })
  const modules: LoraModule[] = []
  const A: Float32Array[] = []
  const B: Float32Array[] = []
  for (const [layer, projs] of [...ad.layers.entries()].sort((a, b) => a[0] - b[0]))
    for (const proj of PROJECTIONS) {
      const w = projs.get(proj)
      if (!w) continue
      const path = moduleName(layer, proj)
      modules.push({
        layer,
        proj,
        path,
        r: w.r,
        inFeatures: w.inFeatures,
        outFeatures: w.outFeatures,
        scale: w.scale
      })
      A.push(Float32Array.from(w.A))
      B.push(Float32Array.from(w.B))
    }
  const config = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8')) as Record<
    string,
    unknown
  >
  return { modules, A, B, config }
}

/** PEFT's saved name of a LoRA tensor. */
export function peftName(m: LoraModule, which: 'A' | 'B'): string {
  return `base_model.model.${m.path}.lora_${which}.weight`
}

export function loraTensors(
  mods: LoraModule[],
  A: Float32Array[],
  B: Float32Array[]
): Map<string, WriteTensor> {
  const out = new Map<string, WriteTensor>()
  mods.forEach((m, i) => {
    out.set(peftName(m, 'A'), { shape: [m.r, m.inFeatures], data: A[i]! })
    out.set(peftName(m, 'B'), { shape: [m.outFeatures, m.r], data: B[i]! })
  })
  return out
}

/** Writes the PEFT directory; returns the adapter's CID (as the node computes it). */
export async function saveLora(state: LoraState, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true })
  const configBytes = new TextEncoder().encode(`${JSON.stringify(state.config, null, 2)}\n`)
  const weightBytes = encodeSafetensors(loraTensors(state.modules, state.A, state.B), { format: 'pt' })
  await writeFile(join(dir, 'adapter_config.json'), configBytes)
  await writeFile(join(dir, 'adapter_model.safetensors'), weightBytes)
  return adapterCidFromBytes(configBytes, weightBytes)
}
