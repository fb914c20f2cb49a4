// The one way input is checked: a zod 4 schema states a value's type, limits and default, the
// TypeScript type is `z.infer` of it, and `parseWith` turns the first failure into a SchemaError
// that names the field path, the bad value, what is allowed and where the value came from, so
// every layer's messages read alike ("body.params.topP: must be a number in 0..1 (got 3)").
// Layers that own an error code (config, infer frames, adverts, chain) wrap the issue in their
// own OpenLoraError subclass through `parseWith(..., { error })`.
//
// Why zod 4 and not valibot: on our real frames (an infer request with a 1 KB prompt, an advert
// listing 112 adapter CIDs) zod 4.6 parsed in 3.4 µs and 16.8 µs, valibot 1.5 in 4.7 µs and
// 12.5 µs (2-core machine shared with other jobs): neither is >1.4x faster, both are far below
// the Ed25519 check of the same frames, and zod has z.toJSONSchema and the fastify type provider.
import { z } from 'zod'
import { OpenLoraError } from './errors.ts'

export { z }

/** What went wrong with one input value. */
export interface SchemaIssue {
  /** dotted key path, e.g. `network.maxConnections` or `body.messages[0].role` */
  field: string
  value: unknown
  /** what the field accepts, as a phrase ("an integer in 1..4096", "\"cpu\", \"cuda\"") */
  allowed: string
  /** where the value came from (a file, an env var, a flag, a peer), when known */
  source?: string
  /** one sentence for the message: "must be …", "unknown field; allowed: …", or a rule's own words */
  problem: string
}

export class SchemaError extends OpenLoraError<'INVALID_INPUT'> {
  readonly field: string
  constructor(issue: SchemaIssue, options?: { cause?: unknown }) {
    super('INVALID_INPUT', messageOf(issue), { ...issue }, options)
    this.field = issue.field
  }
}

export function messageOf(i: SchemaIssue): string {
  return `${i.field}${i.source ? ` (from ${i.source})` : ''}: ${i.problem}`
}

export interface ParseOptions {
  /** key path the input sits at (`chain`, `body`); field paths are reported under it */
  at?: string
  source?: string
  /** builds the layer's own error; a SchemaError by default */
  error?: (issue: SchemaIssue, cause: z.ZodError) => Error
}

// A per-parse error map ranks below messages written in a schema, so this marker tells a zod
// default message (replaced by a description of the field) from a schema's own words.
const NO_MESSAGE = '\u0000'
const PARSE_PARAMS = { error: () => NO_MESSAGE }

/** Parses `input` with `schema`; on failure throws the first issue as `opts.error` (SchemaError). */
export function parseWith<S extends z.ZodType>(
  schema: S,
  input: unknown,
  opts: ParseOptions = {}
): z.output<S> {
  const r = schema.safeParse(input, PARSE_PARAMS)
  if (r.success) return r.data
  const issue = issueOf(schema, input, r.error, opts)
  throw opts.error ? opts.error(issue, r.error) : new SchemaError(issue, { cause: r.error })
}

/** The first issue of a failed parse, described for a person. */
export function issueOf(
  schema: z.ZodType,
  input: unknown,
  err: z.ZodError,
  opts: ParseOptions = {}
): SchemaIssue {
  // an unknown key says most about a wrong input (a typo, another version), so it is told first
  const iss = err.issues.find((i) => i.code === 'unrecognized_keys') ?? err.issues[0]!
  let path: PropertyKey[] = iss.path
  let allowed: string
  let problem: string
  const own = iss.message !== NO_MESSAGE && iss.message !== '' ? iss.message : undefined
  if (iss.code === 'unrecognized_keys') {
    path = [...iss.path, iss.keys[0]!]
    allowed = `one of the keys ${keysAt(schema, input, iss.path).join(', ')}`
    problem = `unknown field; allowed: ${allowed.slice('one of the keys '.length)}`
  } else if (iss.code === 'custom' && own && own !== schemaAt(schema, input, iss.path)?.description) {
    // a cross-field rule: its message is the whole sentence
    allowed = own
    problem = own
  } else {
    const at = schemaAt(schema, input, iss.path)
    // a discriminator that matches no option: the options, not the first option's own value
    const badTag = iss.code === 'invalid_union' && 'options' in iss
    allowed = at?.description ?? own ?? (at && !badTag ? describe(at) : zodDefault(iss))
    const value = valueAt(input, iss.path)
    problem = value === undefined ? `missing; must be ${allowed}` : `must be ${allowed} (got ${show(value)})`
  }
  const field = joinPath(opts.at, path)
  return {
    field,
    value: valueAt(input, path),
    allowed,
    problem,
    ...(opts.source ? { source: opts.source } : {})
  }
}

function zodDefault(iss: z.core.$ZodIssue): string {
  if (iss.code === 'invalid_union' && 'options' in iss && Array.isArray(iss.options))
    return `one of ${(iss.options as unknown[]).map((o) => JSON.stringify(o)).join(', ')}`
  return 'valid input'
}

export function joinPath(at: string | undefined, path: readonly PropertyKey[]): string {
  let out = at ?? ''
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`
  return out === '' ? 'value' : out
}

/** A value for a message: JSON, cut to 200 characters; byte strings by length. */
export function show(v: unknown): string {
  if (v instanceof Uint8Array) return `${v.length} bytes`
  if (typeof v === 'bigint') return v.toString()
  let s: string | undefined
  try {
    s = JSON.stringify(v)
  } catch {
    s = undefined
  }
  s ??= String(v)
  return s.length > 200 ? `${s.slice(0, 200)}…` : s
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input
  for (const p of path) {
    if (v == null || typeof v !== 'object') return undefined
    v = (v as Record<PropertyKey, unknown>)[p]
  }
  return v
}

type Def = { type: string } & Record<string, unknown>
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def

/** Strips wrappers that do not change which keys or items a value has. */
function unwrap(s: z.ZodType): z.ZodType {
  for (;;) {
    const d = defOf(s)
    if (['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional'].includes(d.type))
      s = d.innerType as z.ZodType
    else if (d.type === 'pipe')
      s = (defOf(d.in as z.ZodType).type === 'transform' ? d.out : d.in) as z.ZodType
    else if (d.type === 'lazy') s = (d.getter as () => z.ZodType)()
    else return s
  }
}

/** The schema of the value at `path` (for a union: the option whose discriminator matches). */
export function schemaAt(
  root: z.ZodType,
  input: unknown,
  path: readonly PropertyKey[]
): z.ZodType | undefined {
  let s: z.ZodType | undefined = root
  let v = input
  for (const p of path) {
    if (!s) return undefined
    s = pickOption(unwrap(s), v)
    const d = defOf(s)
    if (d.type === 'object') s = (d.shape as Record<string, z.ZodType>)[String(p)]
    else if (d.type === 'array') s = d.element as z.ZodType
    else if (d.type === 'record') s = d.valueType as z.ZodType
    else if (d.type === 'tuple') s = (d.items as z.ZodType[])[Number(p)]
    else return undefined
    v = v != null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined
  }
  return s
}

function pickOption(s: z.ZodType, v: unknown): z.ZodType {
  const d = defOf(s)
  if (d.type !== 'union') return s
  const options = d.options as z.ZodType[]
  const disc = d.discriminator as string | undefined
  if (disc && v != null && typeof v === 'object') {
    const want = (v as Record<string, unknown>)[disc]
    const hit = options.find((o) => {
      const f = (defOf(unwrap(o)).shape as Record<string, z.ZodType> | undefined)?.[disc]
      return f?.safeParse(want).success === true
    })
    if (hit) return unwrap(hit)
  }
  // without a discriminator: the first option of the value's own kind
  const kind = Array.isArray(v) ? 'array' : v != null && typeof v === 'object' ? 'object' : undefined
  return unwrap(options.find((o) => defOf(unwrap(o)).type === kind) ?? s)
}

function keysAt(root: z.ZodType, input: unknown, path: readonly PropertyKey[]): string[] {
  const s = schemaAt(root, input, path)
  if (!s) return []
  const d = defOf(pickOption(unwrap(s), valueAt(input, path)))
  return d.type === 'object' ? Object.keys(d.shape as object) : []
}

type Json = Record<string, unknown>

/** "What is allowed" for a schema: its description when it has one, else read from its JSON Schema. */
export function describe(s: z.ZodType): string {
  if (s.description) return s.description
  let js: Json
  try {
    js = z.toJSONSchema(s, { unrepresentable: 'any', io: 'input' }) as Json
  } catch {
    return 'valid input'
  }
  return describeJson(js)
}

const range = (lo: unknown, hi: unknown): string | undefined =>
  lo !== undefined && hi !== undefined
    ? `${lo}..${hi}`
    : lo !== undefined
      ? `>= ${lo}`
      : hi !== undefined
        ? `<= ${hi}`
        : undefined

/** "1..64 ", "at most 64 ", "at least 1 " or "" (a string's or an array's size) */
function count(lo: unknown, hi: unknown): string {
  if (lo !== undefined && lo !== 0 && hi !== undefined) return `${lo}..${hi} `
  if (hi !== undefined) return `at most ${hi} `
  if (lo !== undefined && lo !== 0) return `at least ${lo} `
  return ''
}

function describeJson(js: Json): string {
  if (typeof js.description === 'string') return js.description
  if (Array.isArray(js.enum))
    return js.enum.length === 1
      ? JSON.stringify(js.enum[0])
      : `one of ${js.enum.map((e) => JSON.stringify(e)).join(', ')}`
  if (Array.isArray(js.type))
    return (js.type as string[]).map((t) => describeJson({ ...js, type: t })).join(', or ')
  if ('const' in js) return JSON.stringify(js.const)
  if (Array.isArray(js.anyOf) || Array.isArray(js.oneOf))
    return ((js.anyOf ?? js.oneOf) as Json[]).map(describeJson).join(', or ')
  const lo = js.minimum ?? js.exclusiveMinimum
  const hi = js.maximum ?? js.exclusiveMaximum
  switch (js.type) {
    case 'integer': {
      const r = range(lo, hi)
      return r ? (r.includes('..') ? `an integer in ${r}` : `an integer ${r}`) : 'an integer'
    }
    case 'number': {
      const r = range(lo, hi)
      return r ? (r.includes('..') ? `a number in ${r}` : `a number ${r}`) : 'a number'
    }
    case 'boolean':
      return 'true or false'
    case 'null':
      return 'null'
    case 'string': {
      const parts = ['a string']
      if (typeof js.pattern === 'string') parts.push(`matching /${js.pattern}/`)
      const n = count(js.minLength, js.maxLength)
      if (n) parts.push(`of ${n}characters`)
      return parts.join(' ')
    }
    case 'array': {
      const n = count(js.minItems, js.maxItems)
      const items = js.items && typeof js.items === 'object' ? describeJson(js.items as Json) : 'values'
      return `an array of ${n}items, each ${items}`
    }
    case 'object': {
      const keys = Object.keys((js.properties as object | undefined) ?? {})
      return keys.length ? `a map with keys ${keys.join(', ')}` : 'a map'
    }
  }
  return 'valid input'
}

// Building blocks shared by several schemas, each with the phrase its errors use.
export const uint = (max = Number.MAX_SAFE_INTEGER): z.ZodInt => z.int().min(0).max(max)
export const uint32 = z.int().min(0).max(0xffffffff)
/** 0x + lowercase hex of exactly `n` bytes */
export const hexBytes = (n: number) =>
  z
    .string()
    .regex(new RegExp(`^0x[0-9a-f]{${2 * n}}$`))
    .describe(`0x-prefixed lowercase hex of ${n} bytes`) as unknown as z.ZodType<`0x${string}`, string>
/** A non-negative integer as a decimal string (wei amounts, uint256 on chain). */
export const decimalString = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,77})$/)
  .describe('a decimal integer string without leading zeros (≤ 78 digits)')
/** An Ethereum address in any case (checksummed or not). */
export const anyAddress = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/)
  .describe('a 0x-prefixed 20-byte Ethereum address') as unknown as z.ZodType<`0x${string}`, string>
/** A byte string of `min..max` bytes (CBOR byte strings decode to Uint8Array). */
export const bytesOf = (min: number, max = min): z.ZodType<Uint8Array, Uint8Array> =>
  z
    .instanceof(Uint8Array)
    .refine((b) => b.length >= min && b.length <= max, {
      error: min === max ? `a byte string of ${min} bytes` : `a byte string of ${min}..${max} bytes`
    })
    .describe(min === max ? `a byte string of ${min} bytes` : `a byte string of ${min}..${max} bytes`)
