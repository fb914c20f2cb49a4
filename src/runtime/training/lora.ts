// The trainable LoRA state: which modules are adapted, their A/B tensors, where they start from
// (an existing PEFT adapter, or PEFT's default init) and how they are saved (a PEFT directory
// under PEFT's tensor names, which PEFT loads as is and `openlora adapter add` serves).
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadPeftAdapter } from '../adapters/peft.ts'
import { rngFor } from '../fixtures/rng.ts'
import { adapterCidFromBytes } from '../formats/identity.ts'
import { encodeSafetensors, type WriteTensor } from '../formats/safetensors.ts'
import type { ModelConfig } from '../model/config.ts'
import { familyOf } from '../model/families/index.ts'
import type { ModuleSpec } from '../model/families/types.ts'
import { TrainingInputError } from './errors.ts'
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
  /**
   * module names as PEFT's target_modules (q_proj, …, Phi-3's qkv_proj / gate_up_proj), or
   * 'all-linear' (every attention and MLP Linear, never lm_head)
   */
  targets: readonly string[] | 'all-linear'
  rslora: boolean
  seed: number
  baseModel: string
}

/** The module's last name segment, which PEFT's target_modules list matches. */
const shortName = (m: ModuleSpec): string => m.path.slice(m.path.lastIndexOf('.') + 1)

/**
 * The checkpoint modules `targets` adapts in layer `l`. On a family with fused modules a
 * projection name selects the module holding it (Phi-3: q_proj or v_proj → qkv_proj, which is
 * what PEFT's default targets for Phi-3 are), so the same request trains every family.
 */
function targetModules(cfg: ModelConfig, l: number, targets: FreshLora['targets']): ModuleSpec[] {
  const mods = familyOf(cfg).layer(cfg, l).modules
  if (targets === 'all-linear') return mods
  const picked = new Set<ModuleSpec>()
  for (const name of targets) {
    const m =
      mods.find((s) => shortName(s) === name) ?? mods.find((s) => s.parts.some((p) => p.proj === name))
    if (!m)
      throw new TrainingInputError(
        `targets: "${name}" is not a Linear of ${cfg.architecture}; allowed: ${mods.map(shortName).join(', ')} or all-linear`,
        { field: 'targets', value: name }
      )
    picked.add(m)
  }
  return mods.filter((m) => picked.has(m))
}

function loraModule(m: ModuleSpec, l: number, r: number, scale: number): LoraModule {
  return { layer: l, target: shortName(m), path: m.path, r, inFeatures: m.cols, outFeatures: m.rows, scale }
}

/**
 * PEFT's default init: A Kaiming-uniform with a = √5 (PyTorch's nn.Linear default), which is
 * U(−1/√in, 1/√in); B zero, so the adapted model starts equal to the base. Our stream is seeded
 * per tensor (rngFor), so the same seed gives the same adapter; it is not PyTorch's stream.
 */
export function freshLora(cfg: ModelConfig, o: FreshLora): LoraState {
  const scale = o.rslora ? o.alpha / Math.sqrt(o.rank) : o.alpha / o.rank
  const modules: LoraModule[] = []
  const A: Float32Array[] = []
  const B: Float32Array[] = []
  for (let l = 0; l < cfg.numLayers; l++)
    for (const spec of targetModules(cfg, l, o.targets)) {
      const m = loraModule(spec, l, o.rank, scale)
      modules.push(m)
      const rnd = rngFor(o.seed, `${m.path}.lora_A`)
      const bound = 1 / Math.sqrt(m.inFeatures)
      A.push(Float32Array.from({ length: o.rank * m.inFeatures }, () => (2 * rnd() - 1) * bound))
      B.push(new Float32Array(m.outFeatures * o.rank))
    }
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: o.baseModel,
    r: o.rank,
    lora_alpha: o.alpha,
    use_rslora: o.rslora,
    target_modules: [...new Set(modules.map((m) => m.target))],
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
    for (const spec of familyOf(cfg).layer(cfg, layer).modules) {
      const w = projs.get(spec.parts[0]!.proj)
      if (!w) continue
      modules.push(loraModule(spec, layer, w.r, w.scale))
      A.push(Float32Array.from(w.A))
      // the loader splits a fused module's B into its parts (they share A); training needs it whole
      const whole = new Float32Array(spec.rows * w.r)
      for (const part of spec.parts) {
        const pw = projs.get(part.proj)!
        for (let o = 0; o < pw.outFeatures; o++)
          whole.set(pw.B.subarray(o * w.r, (o + 1) * w.r), part.rowOf(o) * w.r)
      }
      B.push(whole)
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
