// Loads a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors) for a Llama-family
// base model, with PEFT's own semantics: per-module rank/alpha from rank_pattern/alpha_pattern,
// scale = alpha / r (or alpha / sqrt(r) with use_rslora), target_modules as a list of name
// suffixes or a full-match regex, layers_to_transform. Anything we would compute differently
// from PEFT (DoRA, modules_to_save, embedding or lm_head LoRA, LoRA bias, …) is refused with an
// error naming the field or tensor; adapters also arrive from peers, so nothing here may crash.
import { readFile, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { OpenLoraError } from '../../common/errors.ts'
import { createLogger, type Logger } from '../../common/log.ts'
import { ADAPTER_FILES, adapterCidFromBytes } from '../formats/identity.ts'
import { parseSafetensorsBytes, SafetensorsError } from '../formats/safetensors.ts'
import { type ModelConfig, PROJECTIONS, type Projection, projectionShape } from '../model/config.ts'

export class PeftAdapterError extends OpenLoraError<'ADAPTER_INVALID'> {
  constructor(message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('ADAPTER_INVALID', message, details, options)
  }
}

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
const MAX_PATTERN_KEYS = 10_000
const MAX_PATTERN_KEY_LENGTH = 512
const MAX_RANK = 4096
const DEFAULT_MAX_FILE_BYTES = 4 * 1024 ** 3
const MLP: readonly string[] = ['gate_proj', 'up_proj', 'down_proj']

type Json = Record<string, unknown>

function bad(message: string, details: Record<string, unknown>): never {
  throw new PeftAdapterError(message, details)
}

/** Module name of a projection as PEFT sees it inside LlamaForCausalLM (pattern keys match it). */
export function moduleName(layer: number, target: Projection): string {
  return `model.layers.${layer}.${MLP.includes(target) ? 'mlp' : 'self_attn'}.${target}`
}

function compilePattern(key: string, field: string): RegExp {
  if (key.length > MAX_PATTERN_KEY_LENGTH)
    bad(`adapter_config.json: "${field}" key is over ${MAX_PATTERN_KEY_LENGTH} characters`, { field })
  try {
    // PEFT: re.match(rf"(.*\.)?({key})$", module_name)
    return new RegExp(`^(?:.*\\.)?(?:${key})$`)
  } catch (err) {
    bad(
      `adapter_config.json: "${field}" key ${JSON.stringify(key)} is not a valid pattern (${(err as Error).message})`,
      { field }
    )
  }
}

function parsePattern(
  v: unknown,
  field: string,
  integer: boolean
): { raw: Record<string, number>; rules: [RegExp, number][] } {
  if (v === undefined || v === null) return { raw: {}, rules: [] }
  if (typeof v !== 'object' || Array.isArray(v))
    bad(`adapter_config.json: "${field}" must be an object`, { field })
  const entries = Object.entries(v as Json)
  if (entries.length > MAX_PATTERN_KEYS)
    bad(`adapter_config.json: "${field}" has over ${MAX_PATTERN_KEYS} keys`, { field })
  const rules: [RegExp, number][] = []
  for (const [k, n] of entries) {
    if (
      typeof n !== 'number' ||
      !(n > 0) ||
      !Number.isFinite(n) ||
      (integer && (!Number.isInteger(n) || n > MAX_RANK))
    ) {
      bad(
        `adapter_config.json: "${field}" value for ${JSON.stringify(k)} must be a positive ${integer ? `integer ≤ ${MAX_RANK}` : 'number'}, got ${JSON.stringify(n)}`,
        { field }
      )
    }
    rules.push([compilePattern(k, field), n])
  }
  return { raw: Object.fromEntries(entries) as Record<string, number>, rules }
}

function lookup(rules: [RegExp, number][], name: string): number | undefined {
  for (const [re, n] of rules) if (re.test(name)) return n
  return undefined
}

/** PEFT's target matching: a list matches a module equal to or ending in ".name"; a string is a full-match regex. */
function moduleMatcher(v: unknown, field: string): ((name: string) => boolean) | null {
  if (v === undefined || v === null) return null
  if (typeof v === 'string') {
    if (v === 'all-linear') return (name) => PROJECTIONS.some((p) => name.endsWith(`.${p}`))
    if (v.length > MAX_PATTERN_KEY_LENGTH)
      bad(`adapter_config.json: "${field}" regex is over ${MAX_PATTERN_KEY_LENGTH} characters`, { field })
    let re: RegExp
    try {
      re = new RegExp(`^(?:${v})$`)
    } catch (err) {
      bad(
        `adapter_config.json: "${field}" ${JSON.stringify(v)} is not a valid regex (${(err as Error).message})`,
        { field }
      )
    }
    return (name) => re.test(name)
  }
  if (!Array.isArray(v) || v.length > MAX_PATTERN_KEYS || !v.every((t) => typeof t === 'string')) {
    bad(`adapter_config.json: "${field}" must be a list of module names or a regex string`, { field })
  }
  const names = v as string[]
  return (name) => names.some((t) => name === t || name.endsWith(`.${t}`))
}

function parseConfig(raw: unknown, model: ModelConfig, log: Logger) {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    bad('adapter_config.json must be a JSON object', { field: '' })
  const c = raw as Json
  const peftType = c.peft_type ?? 'LORA'
  if (peftType !== 'LORA')
    bad(`adapter_config.json: "peft_type" ${JSON.stringify(peftType)} is not supported; allowed: LORA`, {
      field: 'peft_type'
    })
  if (c.use_dora === true)
    bad('adapter_config.json: "use_dora": true (DoRA) is not supported; allowed: false', {
      field: 'use_dora'
    })
  const mts = c.modules_to_save
  if (mts !== undefined && mts !== null && !(Array.isArray(mts) && mts.length === 0)) {
    bad(
      `adapter_config.json: "modules_to_save" ${JSON.stringify(mts)} is not supported (full copies of base modules); allowed: null`,
      { field: 'modules_to_save' }
    )
  }
  if (c.bias !== undefined && c.bias !== 'none')
    bad(`adapter_config.json: "bias" ${JSON.stringify(c.bias)} is not supported; allowed: "none"`, {
      field: 'bias'
    })
  if (c.lora_bias === true)
    bad('adapter_config.json: "lora_bias": true is not supported; allowed: false', { field: 'lora_bias' })
  for (const field of [
    'layer_replication',
    'trainable_token_indices',
    'target_parameters',
    'megatron_config'
  ] as const) {
    const v = c[field]
    if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0)) {
      bad(`adapter_config.json: "${field}" is not supported; allowed: null`, { field })
    }
  }
  const lp = c.layers_pattern
  if (
    lp !== undefined &&
    lp !== null &&
    lp !== 'layers' &&
    !(Array.isArray(lp) && lp.length === 1 && lp[0] === 'layers')
  ) {
    bad(
      `adapter_config.json: "layers_pattern" ${JSON.stringify(lp)} does not name this model's layers; allowed: "layers" or null`,
      { field: 'layers_pattern' }
    )
  }
  const r = c.r ?? 8 // PEFT's default
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1 || r > MAX_RANK)
    bad(`adapter_config.json: "r" must be an integer in 1..${MAX_RANK}, got ${JSON.stringify(r)}`, {
      field: 'r'
    })
  const alpha = c.lora_alpha ?? 8
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha <= 0)
    bad(`adapter_config.json: "lora_alpha" must be a positive number, got ${JSON.stringify(alpha)}`, {
      field: 'lora_alpha'
    })
  const rslora = c.use_rslora ?? false
  if (typeof rslora !== 'boolean')
    bad('adapter_config.json: "use_rslora" must be true or false', { field: 'use_rslora' })
  const fifo = c.fan_in_fan_out ?? false
  if (typeof fifo !== 'boolean')
    bad('adapter_config.json: "fan_in_fan_out" must be true or false', { field: 'fan_in_fan_out' })
  // PEFT resets fan_in_fan_out to false for torch.nn.Linear targets (all of Llama's), and lora_A/B
  // are stored [r, in] / [out, r] either way, so this only changes nothing, loudly
  if (fifo) log.warn('fan_in_fan_out is true but every target is a Linear layer; PEFT treats it as false', {})

  let layers: number[] | null = null
  const ltt = c.layers_to_transform
  if (ltt !== undefined && ltt !== null) {
    const list = Array.isArray(ltt) ? ltt : [ltt]
    for (const l of list) {
      if (typeof l !== 'number' || !Number.isInteger(l) || l < 0 || l >= model.numLayers) {
        bad(
          `adapter_config.json: "layers_to_transform" entry ${JSON.stringify(l)} is outside this model's layers 0..${model.numLayers - 1}`,
          { field: 'layers_to_transform' }
        )
      }
    }
    layers = [...new Set(list as number[])].sort((a, b) => a - b)
  }
  const target = moduleMatcher(c.target_modules, 'target_modules')
  if (target === null) bad('adapter_config.json: "target_modules" is required', { field: 'target_modules' })
  const exclude = moduleMatcher(c.exclude_modules, 'exclude_modules')
  for (const name of ['model.embed_tokens', 'lm_head']) {
    if (target(name) && !exclude?.(name)) {
      bad(
        `adapter_config.json: "target_modules" includes ${name === 'lm_head' ? 'lm_head' : 'embed_tokens'}: embedding and lm_head LoRA are not supported; allowed: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj`,
        { field: 'target_modules', module: name }
      )
    }
  }
  if (Array.isArray(c.target_modules)) {
    for (const t of c.target_modules as string[]) {
      const last = t.split('.').pop()!
      if (!(PROJECTIONS as readonly string[]).includes(last)) {
        bad(
          `adapter_config.json: "target_modules" entry "${t}" names no projection of this model; allowed: ${PROJECTIONS.join(', ')}`,
          { field: 'target_modules', module: t }
        )
      }
    }
  }
  const base = c.base_model_name_or_path
  if (base !== undefined && base !== null && typeof base !== 'string')
    bad('adapter_config.json: "base_model_name_or_path" must be a string', {
      field: 'base_model_name_or_path'
    })
  return {
    r,
    alpha,
    rslora,
    layers,
    target,
    exclude,
    rank: parsePattern(c.rank_pattern, 'rank_pattern', true),
    alphaP: parsePattern(c.alpha_pattern, 'alpha_pattern', false),
    base: (base as string | null | undefined) ?? null
  }
}

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
  const cfg = parseConfig(raw, model, log)

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
      throw new PeftAdapterError(err.message, { ...err.details }, { cause: err })
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
