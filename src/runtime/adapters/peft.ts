// Loads a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) for a Llama-family
// base model, with PEFT's own semantics: per-module rank/alpha from rank_pattern/alpha_pattern,
// scale = alpha / r (or alpha / sqrt(r) with use_rslora), target_modules as a list of name
// suffixes or a full-match regex, layers_to_transform. Anything we would compute differently
// from PEFT (DoRA, modules_to_save, embedding or lm_head LoRA, LoRA bias, …) is refused with an
// error naming the field or tensor; adapters also arrive from peers, so nothing here may crash.
import { readFile, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { createLogger, type Logger } from '../../common/log.ts'
import { ADAPTER_FILES, adapterCidFromBytes } from '../formats/identity.ts'
import { parseSafetensorsBytes, SafetensorsError } from '../formats/safetensors.ts'
import { type ModelConfig, PROJECTIONS, type Projection, projectionShape } from '../model/config.ts'
import { bad, lookup, moduleName, PeftAdapterError, parseAdapterConfig } from './peft-config.ts'

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

const NAME_RE = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_(A|B)\.weight$/

function nameProblem(name: string): string {
  if (name.includes('lora_magnitude_vector')) return 'is a DoRA magnitude vector: DoRA is not supported'
  if (name.includes('lora_embedding') || name.includes('embed_tokens'))
    return 'is an embedding LoRA tensor: embedding LoRA is not supported'
  if (name.includes('lm_head'))
    return 'belongs to lm_head: lm_head LoRA and modules_to_save are not supported'
  if (name.includes('.bias')) return 'is a LoRA bias: LoRA bias is not supported'
  return 'is not a PEFT LoRA tensor name for this model (expected base_model.model.model.layers.N.{self_attn|mlp}.<proj>.lora_{A|B}.weight)'
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

  // which modules the config says are adapted, with their rank and alpha
  const expected = new Map<string, { layer: number; target: Projection; r: number; alpha: number }>()
  const layerList = cfg.layers ?? [...Array(model.numLayers).keys()]
  for (const layer of layerList) {
    for (const target of PROJECTIONS) {
      const mod = moduleName(layer, target)
      if (!cfg.target(mod) || cfg.exclude?.(mod)) continue
      expected.set(mod, {
        layer,
        target,
        r: lookup(cfg.rank.rules, mod) ?? cfg.r,
        alpha: lookup(cfg.alphaP.rules, mod) ?? cfg.alpha
      })
    }
  }
  if (expected.size === 0)
    bad(
      'adapter_config.json: "target_modules" with "layers_to_transform" selects no projection of this model',
      { field: 'target_modules' }
    )

  const found = new Map<string, { A?: Float32Array; B?: Float32Array }>()
  for (const [name, t] of tensors) {
    const m = NAME_RE.exec(name)
    if (!m) bad(`${ADAPTER_FILES[1]}: tensor "${name}" ${nameProblem(name)}`, { tensor: name })
    const layer = Number(m[1])
    const target = m[3] as Projection
    if (
      !(PROJECTIONS as readonly string[]).includes(target) ||
      moduleName(layer, target) !== `model.layers.${m[1]}.${m[2]}.${m[3]}`
    ) {
      bad(`${ADAPTER_FILES[1]}: tensor "${name}" ${nameProblem('')}`, { tensor: name })
    }
    if (layer >= model.numLayers)
      bad(
        `${ADAPTER_FILES[1]}: tensor "${name}" is for layer ${layer} but the base model has ${model.numLayers} layers (base model mismatch)`,
        { tensor: name }
      )
    const mod = moduleName(layer, target)
    const spec = expected.get(mod)
    if (!spec)
      bad(
        `${ADAPTER_FILES[1]}: tensor "${name}" adapts ${mod}, which target_modules/layers_to_transform do not select`,
        { tensor: name }
      )
    const [inF, outF] = projectionShape(model, target)
    const want = m[4] === 'A' ? [spec.r, inF] : [outF, spec.r]
    if (t.shape.length !== 2 || t.shape[0] !== want[0] || t.shape[1] !== want[1]) {
      const why = (m[4] === 'A' ? t.shape[1] !== inF : t.shape[0] !== outF)
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
    slot[m[4] as 'A' | 'B'] = t.data
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
    const [inF, outF] = projectionShape(model, spec.target)
    const scale = spec.alpha / (cfg.rslora ? Math.sqrt(spec.r) : spec.r)
    let byLayer = layers.get(spec.layer)
    if (!byLayer) layers.set(spec.layer, (byLayer = new Map()))
    byLayer.set(spec.target, {
      A: f!.A!,
      B: f!.B!,
      r: spec.r,
      alpha: spec.alpha,
      scale,
      inFeatures: inF,
      outFeatures: outF
    })
    maxRank = Math.max(maxRank, spec.r)
    bytes += (f!.A!.length + f!.B!.length) * 4
    targets.add(spec.target)
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
