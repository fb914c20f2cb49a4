// A JSON Schema (the subset structured output needs) compiled to a grammar tree that the JSON
// automaton (json-automaton.ts) follows one character at a time. Keywords that would let output
// parse but not validate (pattern, format, numeric bounds, …) are refused by name rather than
// ignored, so what the decoder produces always validates against the schema it was given.
import { InvalidParametersError } from '../../common/errors.ts'

export type SchemaNode =
  | { k: 'any'; depth: number }
  | {
      k: 'object'
      props: Map<string, SchemaNode>
      /** declared keys in declaration order (the JSON-escaped key text without quotes) */
      keys: string[]
      required: Set<string>
      /** schema of keys not declared; null = no other keys */
      extra: SchemaNode | null
    }
  | { k: 'array'; items: SchemaNode; min: number; max: number }
  | { k: 'string'; min: number; max: number }
  | { k: 'number'; integer: boolean }
  /** a fixed set of JSON texts: enum, const, true/false, null */
  | { k: 'literal'; values: string[] }
  | { k: 'union'; options: SchemaNode[] }
  | { k: 'ref'; target: () => SchemaNode }

/** Nesting of free ("any") JSON: deeper than this only scalars, so output cannot nest forever. */
export const MAX_ANY_DEPTH = 6
const MAX_NODES = 10_000

const ANNOTATIONS = new Set([
  'title',
  'description',
  'default',
  'examples',
  '$schema',
  '$id',
  '$comment',
  'deprecated',
  'readOnly',
  'writeOnly',
  'strict'
])
const SUPPORTED =
  'type, properties, required, additionalProperties, items, minItems, maxItems, minLength, maxLength, enum, const, anyOf, oneOf (of disjoint types), allOf (one entry), $ref to #/$defs or #/definitions, nullable'

export function anyNode(depth = 0): SchemaNode {
  return { k: 'any', depth }
}

function fail(path: string, msg: string): never {
  throw new InvalidParametersError(`${path}: ${msg}`, { field: 'responseFormat', path })
}

/** Compiles a JSON Schema object (or `true`/`{}` for any JSON value). */
export function compileJsonSchema(schema: unknown): SchemaNode {
  if (schema === true || schema === undefined) return anyNode()
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema))
    fail('schema', 'must be a JSON Schema object')
  const root = schema as Record<string, unknown>
  const defs = { ...(root.definitions as object), ...(root.$defs as object) } as Record<string, unknown>
  const compiledDefs = new Map<string, SchemaNode>()
  let nodes = 0

  const ref = (r: unknown, path: string): SchemaNode => {
    if (typeof r !== 'string') fail(path, '$ref must be a string')
    const m = /^#\/(\$defs|definitions)\/([^/]+)$/.exec(r)
    if (!m) fail(path, `$ref ${r} is not supported (only #/$defs/NAME or #/definitions/NAME)`)
    const name = m[2]!
    if (!(name in defs)) fail(path, `$ref ${r} names no definition`)
    return {
      k: 'ref',
      target: () => {
        let n = compiledDefs.get(name)
        if (!n) {
          // placeholder first, so a recursive definition compiles to a cycle, not endless recursion
          const slot: SchemaNode = { k: 'union', options: [] }
          compiledDefs.set(name, slot)
          n = compile(defs[name], `${path}→${name}`)
          Object.assign(slot, n)
          n = slot
        }
        return n
      }
    }
  }

  const compile = (s: unknown, path: string): SchemaNode => {
    if (++nodes > MAX_NODES) fail(path, `schema has more than ${MAX_NODES} nodes`)
    if (s === true) return anyNode()
    if (s === false) fail(path, 'false (no value allowed) cannot be generated')
    if (typeof s !== 'object' || s === null || Array.isArray(s)) fail(path, 'must be a schema object')
    const o = s as Record<string, unknown>
    for (const key of Object.keys(o)) {
      if (ANNOTATIONS.has(key) || key === '$defs' || key === 'definitions') continue
      if (!KNOWN.has(key))
        fail(path, `keyword "${key}" is not supported by constrained decoding (supported: ${SUPPORTED})`)
    }
    if (o.$ref !== undefined) {
      if (Object.keys(o).some((k) => KNOWN.has(k) && k !== '$ref'))
        fail(path, '$ref beside other keywords is not supported')
      return ref(o.$ref, path)
    }
    if (o.const !== undefined) return { k: 'literal', values: [JSON.stringify(o.const)] }
    if (o.enum !== undefined) {
      if (!Array.isArray(o.enum) || o.enum.length === 0 || o.enum.length > 1000)
        fail(`${path}.enum`, 'must be a list of 1..1000 values')
      return { k: 'literal', values: [...new Set(o.enum.map((v) => JSON.stringify(v)))] }
    }
    const alts = o.anyOf ?? o.oneOf
    if (alts !== undefined) {
      if (!Array.isArray(alts) || alts.length === 0) fail(path, 'anyOf/oneOf must be a non-empty list')
      const options = alts.map((a, i) => compile(a, `${path}.${o.anyOf ? 'anyOf' : 'oneOf'}[${i}]`))
      if (o.oneOf !== undefined && !disjoint(options))
        fail(path, 'oneOf is supported only for options of different types (use anyOf)')
      return options.length === 1 ? options[0]! : { k: 'union', options }
    }
    if (o.allOf !== undefined) {
      if (!Array.isArray(o.allOf) || o.allOf.length !== 1)
        fail(path, 'allOf is supported with exactly one entry')
      return compile(o.allOf[0], `${path}.allOf[0]`)
    }
    let types: string[]
    if (o.type === undefined) {
      if (o.properties !== undefined || o.required !== undefined || o.additionalProperties !== undefined)
        types = ['object']
      else if (o.items !== undefined) types = ['array']
      else return anyNode()
    } else types = Array.isArray(o.type) ? (o.type as string[]) : [o.type as string]
    if (o.nullable === true && !types.includes('null')) types.push('null')
    const options = types.map((t) => typed(t, o, path))
    return options.length === 1 ? options[0]! : { k: 'union', options }
  }

  const typed = (t: string, o: Record<string, unknown>, path: string): SchemaNode => {
    switch (t) {
      case 'string': {
        const min = count(o.minLength, 0, `${path}.minLength`)
        const max =
          o.maxLength === undefined ? Number.POSITIVE_INFINITY : count(o.maxLength, 0, `${path}.maxLength`)
        if (max < min) fail(path, 'maxLength is below minLength')
        return { k: 'string', min, max }
      }
      case 'number':
      case 'integer':
        return { k: 'number', integer: t === 'integer' }
      case 'boolean':
        return { k: 'literal', values: ['true', 'false'] }
      case 'null':
        return { k: 'literal', values: ['null'] }
      case 'array': {
        const min = count(o.minItems, 0, `${path}.minItems`)
        const max =
          o.maxItems === undefined ? Number.POSITIVE_INFINITY : count(o.maxItems, 0, `${path}.maxItems`)
        if (max < min) fail(path, 'maxItems is below minItems')
        if (Array.isArray(o.items)) fail(`${path}.items`, 'tuple items (a list) are not supported')
        return {
          k: 'array',
          items: o.items === undefined ? anyNode(1) : compile(o.items, `${path}.items`),
          min,
          max
        }
      }
      case 'object': {
        const props = new Map<string, SchemaNode>()
        const keys: string[] = []
        const p = (o.properties ?? {}) as Record<string, unknown>
        if (typeof p !== 'object' || Array.isArray(p)) fail(`${path}.properties`, 'must be an object')
        for (const [name, sub] of Object.entries(p)) {
          const key = JSON.stringify(name).slice(1, -1)
          props.set(key, compile(sub, `${path}.properties.${name}`))
          keys.push(key)
        }
        const req = o.required ?? []
        if (!Array.isArray(req)) fail(`${path}.required`, 'must be a list of property names')
        const required = new Set<string>()
        for (const r of req) {
          const key = JSON.stringify(String(r)).slice(1, -1)
          if (!props.has(key)) fail(`${path}.required`, `"${r}" is required but not in properties`)
          required.add(key)
        }
        // Undeclared keys only where the schema asks for them: with properties declared and
        // additionalProperties absent, generating just the declared ones still validates.
        const ap = o.additionalProperties
        const extra =
          ap === false || (ap === undefined && keys.length > 0)
            ? null
            : ap === undefined || ap === true
              ? anyNode(1)
              : compile(ap, `${path}.additionalProperties`)
        return { k: 'object', props, keys, required, extra }
      }
      default:
        fail(`${path}.type`, `type "${t}" is not a JSON Schema type`)
    }
  }

  return compile(root, 'schema')
}

const KNOWN = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'minItems',
  'maxItems',
  'minLength',
  'maxLength',
  'enum',
  'const',
  'anyOf',
  'oneOf',
  'allOf',
  '$ref',
  'nullable'
])

function count(v: unknown, dflt: number, path: string): number {
  if (v === undefined) return dflt
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 100_000)
    fail(path, 'must be an integer in 0..100000')
  return v as number
}

/** oneOf may only hold options whose values cannot overlap, so "exactly one" holds by type. */
function disjoint(options: SchemaNode[]): boolean {
  const kinds = options.map((o) => (o.k === 'literal' ? `lit:${o.values.join(',')}` : o.k))
  return (
    new Set(kinds).size === kinds.length &&
    !kinds.includes('any') &&
    !kinds.includes('ref') &&
    !kinds.includes('union')
  )
}
