// adapter_config.json as PEFT reads it: which modules are adapted (target_modules as a list of
// name suffixes, a full-match regex or "all-linear"; exclude_modules; layers_to_transform), with
// which rank and alpha (rank_pattern / alpha_pattern keys match the end of a module name, first
// match wins), and every option we cannot compute the same way refused by name. Pattern keys
// and regexes come from untrusted files, so their number and length are bounded.
import { OpenLoraError } from '../../common/errors.ts'
import type { Logger } from '../../common/log.ts'
import { familyOf, type ModelConfig, type Projection } from '../model/config.ts'

export class PeftAdapterError extends OpenLoraError<'ADAPTER_INVALID'> {
  constructor(message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('ADAPTER_INVALID', message, data, options)
  }
}

const MAX_PATTERN_KEYS = 10_000
const MAX_PATTERN_KEY_LENGTH = 512
const MAX_RANK = 4096
const MLP: readonly string[] = ['gate_proj', 'up_proj', 'down_proj']

type Json = Record<string, unknown>

export function bad(message: string, data: Record<string, unknown>): never {
  throw new PeftAdapterError(message, data)
}

/** Module name of a projection as PEFT sees it inside LlamaForCausalLM (pattern keys match it). */
export function moduleName(layer: number, target: Projection): string {
  return `model.layers.${layer}.${MLP.includes(target) ? 'mlp' : 'self_attn'}.${target}`
}

/**
 * True when a quantified group itself contains a quantifier, e.g. `(a+)+` or `(.*)*`: the shape
 * that makes backtracking regexes take exponential time. Keys and regexes come from adapters
 * fetched from peers, and PEFT configs never need it, so such patterns are refused.
 */
export function hasNestedQuantifier(src: string): boolean {
  const stack: boolean[] = []
  let inClass = false
  for (let i = 0; i < src.length; i++) {
    const ch = src[i]!
    if (ch === '\\') {
      i++
      continue
    }
    if (inClass) {
      if (ch === ']') inClass = false
      continue
    }
    if (ch === '[') inClass = true
    else if (ch === '(') stack.push(false)
    else if (ch === ')') {
      const inner = stack.pop() ?? false
      const next = src[i + 1]
      const quantified = next === '*' || next === '+' || next === '{'
      if (inner && quantified) return true
      // the enclosing group contains whatever this one did
      if (stack.length > 0 && (inner || quantified)) stack[stack.length - 1] = true
    } else if ((ch === '*' || ch === '+' || ch === '{') && stack.length > 0) stack[stack.length - 1] = true
  }
  return false
}

function safeRegex(src: string, field: string): void {
  if (hasNestedQuantifier(src)) {
    bad(
      `adapter_config.json: "${field}" pattern ${JSON.stringify(src.slice(0, 80))} nests quantifiers (e.g. (a+)+), which can take exponential time; refused`,
      { field }
    )
  }
}

function compilePattern(key: string, field: string): RegExp {
  if (key.length > MAX_PATTERN_KEY_LENGTH)
    bad(`adapter_config.json: "${field}" key is over ${MAX_PATTERN_KEY_LENGTH} characters`, { field })
  safeRegex(key, field)
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

export function lookup(rules: [RegExp, number][], name: string): number | undefined {
  for (const [re, n] of rules) if (re.test(name)) return n
  return undefined
}

/** PEFT's target matching: a list matches a module equal to or ending in ".name"; a string is a full-match regex. */
function moduleMatcher(
  v: unknown,
  field: string,
  linears: readonly string[]
): ((name: string) => boolean) | null {
  if (v === undefined || v === null) return null
  if (typeof v === 'string') {
    if (v === 'all-linear') return (name) => linears.some((p) => name.endsWith(`.${p}`))
    if (v.length > MAX_PATTERN_KEY_LENGTH)
      bad(`adapter_config.json: "${field}" regex is over ${MAX_PATTERN_KEY_LENGTH} characters`, { field })
    safeRegex(v, field)
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

export function parseAdapterConfig(raw: unknown, model: ModelConfig, log: Logger) {
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
  // the short names of the family's attention and MLP Linears (qkv_proj, gate_up_proj on Phi-3)
  const family = familyOf(model)
  const linears = [...new Set(family.layer(model, 0).modules.map((m) => m.path.split('.').pop()!))]
  const target = moduleMatcher(c.target_modules, 'target_modules', linears)
  if (target === null) bad('adapter_config.json: "target_modules" is required', { field: 'target_modules' })
  const exclude = moduleMatcher(c.exclude_modules, 'exclude_modules', linears)
  for (const name of ['model.embed_tokens', 'lm_head']) {
    if (target(name) && !exclude?.(name)) {
      bad(
        `adapter_config.json: "target_modules" includes ${name === 'lm_head' ? 'lm_head' : 'embed_tokens'}: embedding and lm_head LoRA are not supported; allowed: ${linears.join(', ')}`,
        { field: 'target_modules', module: name }
      )
    }
  }
  if (Array.isArray(c.target_modules)) {
    for (const t of c.target_modules as string[]) {
      const last = t.split('.').pop()!
      if (!linears.includes(last)) {
        bad(
          `adapter_config.json: "target_modules" entry "${t}" names no projection of this model; allowed: ${linears.join(', ')}`,
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
