// Loads a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) for a base model of
// any registered family (module names and fused modules come from its family file), with PEFT's own semantics: per-module rank/alpha from rank_pattern/alpha_pattern,
// scale = alpha / r (or alpha / sqrt(r) with use_rslora), target_modules as a list of name
// suffixes or a full-match regex, layers_to_transform. Anything we would compute differently
// from PEFT (DoRA, modules_to_save, embedding or lm_head LoRA, LoRA bias, …) is refused with an
// error naming the field or tensor; adapters also arrive from peers, so nothing here may crash.
import { readFile, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { createLogger, type Logger } from '../../common/log.ts'
import { ADAPTER_FILES, adapterCidFromBytes } from '../formats/identity.ts'
import { parseSafetensorsBytes, SafetensorsError } from '../formats/safetensors.ts'
import { familyOf, type ModelConfig, PROJECTIONS, type Projection, projectionShape } from '../model/config.ts'
import type { ModuleSpec } from '../model/families/types.ts'
import { bad, lookup, PeftAdapterError, parseAdapterConfig } from './peft-config.ts'

export { moduleName, PeftAdapterError } from './peft-config.ts'

export interface LoraWeights {
  /** [r, in] row-major, as PEFT stores lora_A */
  A: Float32Array
  /** [out, r] row-major, as PEFT stores lora_B */
  B: Float32Array
  r: number
  alpha: number
  /** alpha / r, or alpha / sqrt(r) with rsLoRA; delta W = scale · B·A */
  scale: number
  inFeatures: number
  outFeatures: number
}

export interface PeftConfig {
  r: number
  alpha: number
  rslora: boolean
  /** projections the adapter touches in at least one layer */
  targets: Projection[]
  rankPattern: Record<string, number>
  alphaPattern: Record<string, number>
  layersToTransform: number[] | null
  baseModelName: string | null
}

export interface PeftAdapter {
  cid: string
  config: PeftConfig
  layers: Map<number, Map<Projection, LoraWeights>>
  /** largest per-module rank (what a slot pool must fit) */
  maxRank: number
  /** fp32 bytes of all A and B arrays (what the adapter costs in RAM) */
  bytes: number
  /** bytes of the two files (what it costs on disk and on the wire) */
  fileBytes: number
}

export interface LoadPeftOptions {
  /** the base model's id; config.nameOrPath when absent */
  modelId?: string
  /** compare base_model_name_or_path with the model id (shapes are always checked); default true */
  checkBaseModel?: boolean
  /** refuse adapter files larger than this; 4 GiB by default */
  maxFileBytes?: number
  log?: Logger
}

const MAX_CONFIG_BYTES = 1024 * 1024
const DEFAULT_MAX_FILE_BYTES = 4 * 1024 ** 3

const LAYER_RE = /\.layers\.(\d+)\./

function nameProblem(name: string, family: string): string {
  if (name.includes('lora_magnitude_vector')) return 'is a DoRA magnitude vector: DoRA is not supported'
  if (name.includes('lora_embedding') || name.includes('embed_tokens'))
    return 'is an embedding LoRA tensor: embedding LoRA is not supported'
  if (name.includes('lm_head'))
    return 'belongs to lm_head: lm_head LoRA and modules_to_save are not supported'
  if (name.includes('.bias')) return 'is a LoRA bias: LoRA bias is not supported'
  return `is not a PEFT LoRA tensor name of this ${family} model (expected base_model.model.<module>.lora_{A|B}.weight for one of its attention or MLP Linears)`
}

/** Last path segment, lowercased: "HuggingFaceTB/SmolLM2-135M" and "/models/smollm2-135m" agree. */
function shortName(s: string): string {
  return s
    .replace(/[/\\]+$/, '')
    .split(/[/\\]/)
    .pop()!
    .toLowerCase()
}

/** Parses adapter files already in memory (from disk or a peer); throws PeftAdapterError. */
export function parsePeftAdapter(
  configBytes: Uint8Array,
  weightBytes: Uint8Array,
  model: ModelConfig,
  opts: LoadPeftOptions = {}
): PeftAdapter {
  const log = opts.log ?? createLogger('runtime:peft')
  if (configBytes.length > MAX_CONFIG_BYTES)
    bad(`adapter_config.json is ${configBytes.length} bytes; at most ${MAX_CONFIG_BYTES} allowed`, {
      file: 'adapter_config.json'
    })
  let raw: unknown
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(configBytes))
  } catch (err) {
    bad(`adapter_config.json is not valid JSON (${(err as Error).message})`, { file: 'adapter_config.json' })
  }
  const cfg = parseAdapterConfig(raw, model, log)

  const modelId = opts.modelId ?? model.nameOrPath
  if (
    opts.checkBaseModel !== false &&
    cfg.base !== null &&
    modelId != null &&
    shortName(cfg.base) !== shortName(modelId)
  ) {
    bad(
      `adapter was trained for base model "${cfg.base}" but the loaded model is "${modelId}" (base_model_name_or_path mismatch; pass checkBaseModel: false to load it anyway if the shapes fit)`,
      { field: 'base_model_name_or_path', expected: modelId, got: cfg.base }
    )
  }

  let tensors: ReturnType<typeof parseSafetensorsBytes>['tensors']
  try {
    tensors = parseSafetensorsBytes(ADAPTER_FILES[1], weightBytes).tensors
  } catch (err) {
    if (err instanceof SafetensorsError)
      throw new PeftAdapterError(err.message, { ...err.data }, { cause: err })
    throw err
  }

  // which checkpoint modules the config says are adapted, with their rank and alpha; a fused
  // module (Phi-3's qkv_proj) is one PEFT module holding several of our projections
  const family = familyOf(model)
  const expected = new Map<string, { layer: number; module: ModuleSpec; r: number; alpha: number }>()
  const byTensor = new Map<string, [string, 'A' | 'B']>()
  const layerList = cfg.layers ?? [...Array(model.numLayers).keys()]
  for (const layer of layerList) {
    for (const module of family.layer(model, layer).modules) {
      const mod = module.path
      if (!cfg.target(mod) || cfg.exclude?.(mod)) continue
      expected.set(mod, {
        layer,
        module,
        r: lookup(cfg.rank.rules, mod) ?? cfg.r,
        alpha: lookup(cfg.alphaP.rules, mod) ?? cfg.alpha
      })
    }
  }
  for (let layer = 0; layer < model.numLayers; layer++) {
    for (const module of family.layer(model, layer).modules) {
      byTensor.set(`base_model.model.${module.path}.lora_A.weight`, [module.path, 'A'])
      byTensor.set(`base_model.model.${module.path}.lora_B.weight`, [module.path, 'B'])
    }
  }
  if (expected.size === 0)
    bad(
      'adapter_config.json: "target_modules" with "layers_to_transform" selects no projection of this model',
      { field: 'target_modules' }
    )

  const found = new Map<string, { A?: Float32Array; B?: Float32Array }>()
  for (const [name, t] of tensors) {
    const known = byTensor.get(name)
    if (!known) {
      const layer = LAYER_RE.exec(name)
      if (layer && Number(layer[1]) >= model.numLayers && /\.lora_[AB]\.weight$/.test(name))
        bad(
          `${ADAPTER_FILES[1]}: tensor "${name}" is for layer ${layer[1]} but the base model has ${model.numLayers} layers (base model mismatch)`,
          { tensor: name }
        )
      bad(`${ADAPTER_FILES[1]}: tensor "${name}" ${nameProblem(name, family.name)}`, { tensor: name })
    }
    const [mod, which] = known
    const spec = expected.get(mod)
    if (!spec)
      bad(
        `${ADAPTER_FILES[1]}: tensor "${name}" adapts ${mod}, which target_modules/layers_to_transform do not select`,
        { tensor: name }
      )
    const inF = spec.module.cols
    const outF = spec.module.rows
    const want = which === 'A' ? [spec.r, inF] : [outF, spec.r]
    if (t.shape.length !== 2 || t.shape[0] !== want[0] || t.shape[1] !== want[1]) {
      const why = (which === 'A' ? t.shape[1] !== inF : t.shape[0] !== outF)
        ? 'does not fit the base model (base model mismatch)'
        : 'does not match the rank in r/rank_pattern'
      bad(
        `${ADAPTER_FILES[1]}: tensor "${name}" has shape ${JSON.stringify(t.shape)}, expected ${JSON.stringify(want)}: ${why}`,
        { tensor: name, shape: t.shape, expected: want }
      )
    }
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i]!))
        bad(`${ADAPTER_FILES[1]}: tensor "${name}" holds a non-finite value at index ${i}`, { tensor: name })
    }
    const slot = found.get(mod) ?? {}
    slot[which] = t.data
    found.set(mod, slot)
  }

  const layers = new Map<number, Map<Projection, LoraWeights>>()
  let maxRank = 0
  let bytes = 0
  const targets = new Set<Projection>()
  for (const [mod, spec] of expected) {
    const f = found.get(mod)
    for (const part of ['A', 'B'] as const) {
      if (!f?.[part])
        bad(
          `${ADAPTER_FILES[1]}: tensor "base_model.model.${mod}.lora_${part}.weight" is missing (target_modules selects ${mod})`,
          { tensor: `base_model.model.${mod}.lora_${part}.weight` }
        )
    }
    const scale = spec.alpha / (cfg.rslora ? Math.sqrt(spec.r) : spec.r)
    let byLayer = layers.get(spec.layer)
    if (!byLayer) layers.set(spec.layer, (byLayer = new Map()))
    const r = spec.r
    for (const { proj, rowOf } of spec.module.parts) {
      const [inF, outF] = projectionShape(model, proj)
      // a fused module's parts share A (they read the same input); B's rows split as the weight's do
      let B = f!.B!
      if (spec.module.parts.length > 1) {
        B = new Float32Array(outF * r)
        for (let o = 0; o < outF; o++) B.set(f!.B!.subarray(rowOf(o) * r, (rowOf(o) + 1) * r), o * r)
      }
      byLayer.set(proj, { A: f!.A!, B, r, alpha: spec.alpha, scale, inFeatures: inF, outFeatures: outF })
      targets.add(proj)
    }
    maxRank = Math.max(maxRank, spec.r)
    bytes += (f!.A!.length + f!.B!.length) * 4
  }
  return {
    cid: adapterCidFromBytes(configBytes, weightBytes),
    config: {
      r: cfg.r,
      alpha: cfg.alpha,
      rslora: cfg.rslora,
      targets: PROJECTIONS.filter((p) => targets.has(p)),
      rankPattern: cfg.rank.raw,
      alphaPattern: cfg.alphaP.raw,
      layersToTransform: cfg.layers,
      baseModelName: cfg.base
    },
    layers,
    maxRank,
    bytes,
    fileBytes: configBytes.length + weightBytes.length
  }
}

/** Loads a PEFT directory; only adapter_config.json and adapter_model.safetensors are read. */
export async function loadPeftAdapter(
  dir: string,
  model: ModelConfig,
  opts: LoadPeftOptions = {}
): Promise<PeftAdapter> {
  const max = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES
  const read = async (name: string): Promise<Uint8Array> => {
    const path = join(dir, name)
    let size: number
    try {
      size = (await stat(path)).size
    } catch (err) {
      bad(
        `${basename(dir)}/${name}: cannot read (${(err as Error).message}); a PEFT adapter directory holds ${ADAPTER_FILES.join(' and ')}`,
        { file: path }
      )
    }
    if (size > max) bad(`${name} is ${size} bytes; at most ${max} allowed`, { file: path })
    return new Uint8Array(await readFile(path))
  }
  const configBytes = await read(ADAPTER_FILES[0])
  const weightBytes = await read(ADAPTER_FILES[1])
  return parsePeftAdapter(configBytes, weightBytes, model, opts)
}
