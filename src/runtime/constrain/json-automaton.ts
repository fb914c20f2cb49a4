// A character-level recogniser of compact JSON following a compiled schema (json-schema.ts). A
// state is a small set of alternative stacks (anyOf and literals that prefix each other make it
// nondeterministic); each stack is an immutable linked list of frames whose `up` is the
// continuation to resume when the frame's value is complete, so stepping shares structure and a
// state can be kept per vocabulary-trie node without copying. No whitespace is generated outside
// strings (compact JSON), so a model cannot pad its output forever.
import { anyNode, MAX_ANY_DEPTH, type SchemaNode } from './json-schema.ts'

type ObjNode = Extract<SchemaNode, { k: 'object' }>
type ArrNode = Extract<SchemaNode, { k: 'array' }>

export type Frame =
  | { t: 'D' }
  | { t: 'V'; n: SchemaNode; up: Frame }
  /** ph: open (after '{'), key (inside a key; kb = its text so far), colon, after (a value), comma */
  | {
      t: 'O'
      n: ObjNode
      seen: readonly string[]
      ph: 'open' | 'key' | 'colon' | 'after' | 'comma'
      kb: string
      up: Frame
    }
  | { t: 'A'; n: ArrNode; count: number; ph: 'open' | 'after' | 'comma'; up: Frame }
  /** esc: 0 none, 1 after '\\', 2..5 = hex digits of \u seen + 2 */
  | { t: 'S'; min: number; max: number; len: number; esc: number; key: boolean; up: Frame }
  | {
      t: 'N'
      integer: boolean
      ph: 'start' | 'sign' | 'zero' | 'int' | 'dot' | 'frac'
      digits: number
      up: Frame
    }
  | { t: 'L'; rest: readonly string[]; up: Frame }

export type State = readonly Frame[]

const DONE: Frame = { t: 'D' }
/** Digits of a number's integer or fraction part: JSON numbers past this lose precision anyway. */
const MAX_DIGITS = 15
/** Alternatives kept per state; anyOf trees wider than this are cut (the first ones stay). */
const MAX_ALTERNATIVES = 64

export function initialState(root: SchemaNode): State {
  return [{ t: 'V', n: root, up: DONE }]
}

const resolve = (n: SchemaNode): SchemaNode => (n.k === 'ref' ? resolve(n.target()) : n)

function schemaOfKey(o: ObjNode, key: string): SchemaNode | null {
  return o.props.get(key) ?? o.extra
}

function requiredLeft(o: ObjNode, seen: readonly string[]): string[] {
  return [...o.required].filter((k) => !seen.includes(k))
}

/** Keys that may still start: declared and unseen (plus free keys when `extra`). */
function keyCandidates(o: ObjNode, seen: readonly string[], kb: string): string[] {
  return o.keys.filter((k) => !seen.includes(k) && k.startsWith(kb))
}

function canAddKey(o: ObjNode, seen: readonly string[]): boolean {
  return o.extra !== null || o.keys.some((k) => !seen.includes(k))
}

const isDigit = (c: string) => c >= '0' && c <= '9'
const isHex = (c: string) => isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')

/** Starts a value of `n` with its first character `c`; `up` resumes after it. */
function startValue(n0: SchemaNode, up: Frame, c: string, out: Frame[]): void {
  const n = resolve(n0)
  switch (n.k) {
    case 'union':
      for (const o of n.options) startValue(o, up, c, out)
      return
    case 'any': {
      const deep = n.depth >= MAX_ANY_DEPTH
      if (c === '{' && !deep)
        out.push({
          t: 'O',
          n: { k: 'object', props: new Map(), keys: [], required: new Set(), extra: anyNode(n.depth + 1) },
          seen: [],
          ph: 'open',
          kb: '',
          up
        })
      else if (c === '[' && !deep)
        out.push({
          t: 'A',
          n: { k: 'array', items: anyNode(n.depth + 1), min: 0, max: Number.POSITIVE_INFINITY },
          count: 0,
          ph: 'open',
          up
        })
      else if (c === '"')
        out.push({ t: 'S', min: 0, max: Number.POSITIVE_INFINITY, len: 0, esc: 0, key: false, up })
      else if (c === '-' || isDigit(c))
        stepFrame({ t: 'N', integer: false, ph: 'start', digits: 0, up }, c, out)
      else stepFrame({ t: 'L', rest: ['true', 'false', 'null'], up }, c, out)
      return
    }
    case 'object':
      if (c === '{') out.push({ t: 'O', n, seen: [], ph: 'open', kb: '', up })
      return
    case 'array':
      if (c === '[') out.push({ t: 'A', n, count: 0, ph: 'open', up })
      return
    case 'string':
      if (c === '"') out.push({ t: 'S', min: n.min, max: n.max, len: 0, esc: 0, key: false, up })
      return
    case 'number':
      stepFrame({ t: 'N', integer: n.integer, ph: 'start', digits: 0, up }, c, out)
      return
    case 'literal':
      stepFrame({ t: 'L', rest: n.values, up }, c, out)
      return
  }
}

/** Every stack that `f` becomes after character `c` (none: `c` is not allowed here). */
function stepFrame(f: Frame, c: string, out: Frame[]): void {
  switch (f.t) {
    case 'D':
      return
    case 'V':
      startValue(f.n, f.up, c, out)
      return
    case 'L': {
      const next: string[] = []
      let complete = false
      for (const r of f.rest) {
        if (r === '') complete = true
        else if (r[0] === c) next.push(r.slice(1))
      }
      if (next.length > 0) out.push({ t: 'L', rest: next, up: f.up })
      // a finished literal (e.g. enum [1, 12] after "1") hands the character to its parent
      if (complete) stepFrame(f.up, c, out)
      return
    }
    case 'N': {
      const end = (): void => stepFrame(f.up, c, out)
      const digit = isDigit(c)
      switch (f.ph) {
        case 'start':
          if (c === '-') out.push({ ...f, ph: 'sign' })
          else if (c === '0') out.push({ ...f, ph: 'zero', digits: 1 })
          else if (digit) out.push({ ...f, ph: 'int', digits: 1 })
          return
        case 'sign':
          if (c === '0') out.push({ ...f, ph: 'zero', digits: 1 })
          else if (digit) out.push({ ...f, ph: 'int', digits: 1 })
          return
        case 'zero':
          if (c === '.' && !f.integer) out.push({ ...f, ph: 'dot', digits: 0 })
          else end()
          return
        case 'int':
          if (digit && f.digits < MAX_DIGITS) out.push({ ...f, digits: f.digits + 1 })
          else if (c === '.' && !f.integer) out.push({ ...f, ph: 'dot', digits: 0 })
          else if (!digit) end()
          return
        case 'dot':
          if (digit) out.push({ ...f, ph: 'frac', digits: 1 })
          return
        case 'frac':
          if (digit && f.digits < MAX_DIGITS) out.push({ ...f, digits: f.digits + 1 })
          else if (!digit) end()
          return
      }
      return
    }
    case 'S': {
      if (f.esc === 1) {
        if ('"\\/bfnrt'.includes(c)) out.push({ ...f, esc: 0, len: f.len + 1 })
        else if (c === 'u') out.push({ ...f, esc: 2 })
        return
      }
      if (f.esc >= 2) {
        if (!isHex(c)) return
        out.push(f.esc === 5 ? { ...f, esc: 0, len: f.len + 1 } : { ...f, esc: f.esc + 1 })
        return
      }
      if (c === '"') {
        if (f.len >= f.min) out.push(f.up)
        return
      }
      if (c.charCodeAt(0) < 0x20 || f.len >= f.max) return
      // keys are free text only where `extra` allows undeclared keys; escapes are not needed there
      if (c === '\\') {
        if (!f.key) out.push({ ...f, esc: 1 })
        return
      }
      out.push({ ...f, len: f.len + 1 })
      return
    }
    case 'A': {
      const n = f.n
      if (f.ph === 'after') {
        if (c === ',' && f.count < n.max) out.push({ ...f, ph: 'comma' })
        else if (c === ']' && f.count >= n.min) out.push(f.up)
        return
      }
      if (f.ph === 'open' && c === ']') {
        if (n.min === 0) out.push(f.up)
        return
      }
      if (f.ph === 'open' && n.max === 0) return
      startValue(n.items, { ...f, count: f.count + 1, ph: 'after' }, c, out)
      return
    }
    case 'O': {
      const n = f.n
      switch (f.ph) {
        case 'open':
        case 'comma':
          if (c === '"' && canAddKey(n, f.seen)) out.push({ ...f, ph: 'key', kb: '' })
          else if (c === '}' && f.ph === 'open' && requiredLeft(n, f.seen).length === 0) out.push(f.up)
          return
        case 'key': {
          const declared = keyCandidates(n, f.seen, f.kb)
          if (c === '"') {
            const key = f.kb
            const ok = declared.includes(key) || (n.extra !== null && !f.seen.includes(key))
            if (ok) out.push({ ...f, ph: 'colon', seen: [...f.seen, key] })
            return
          }
          if (c.charCodeAt(0) < 0x20 || c === '\\') return
          const kb = f.kb + c
          if (n.extra !== null ? kb.length <= 64 : declared.some((k) => k.startsWith(kb)))
            out.push({ ...f, kb })
          return
        }
        case 'colon': {
          if (c !== ':') return
          const key = f.seen[f.seen.length - 1]!
          out.push({ t: 'V', n: schemaOfKey(n, key) ?? anyNode(), up: { ...f, ph: 'after', kb: '' } })
          return
        }
        case 'after':
          if (c === ',' && canAddKey(n, f.seen)) out.push({ ...f, ph: 'comma' })
          else if (c === '}' && requiredLeft(n, f.seen).length === 0) out.push(f.up)
          return
      }
    }
  }
}

export function step(state: State, c: string): State {
  const out: Frame[] = []
  for (const f of state) stepFrame(f, c, out)
  return out.length > MAX_ALTERNATIVES ? out.slice(0, MAX_ALTERNATIVES) : out
}

export function stepText(state: State, text: string): State {
  let s = state
  for (const c of text) {
    s = step(s, c)
    if (s.length === 0) return s
  }
  return s
}

/** The value is complete: generation may stop here. */
export function canFinish(state: State): boolean {
  return state.some(finishable)
}

function finishable(f: Frame): boolean {
  if (f.t === 'D') return true
  if (f.t === 'N') return (f.ph === 'zero' || f.ph === 'int' || f.ph === 'frac') && finishable(f.up)
  if (f.t === 'L') return f.rest.includes('') && finishable(f.up)
  return false
}

/** Nothing but the end may follow (the root value is closed). */
export function isClosed(state: State): boolean {
  return state.length > 0 && state.every((f) => f.t === 'D')
}

// ---- the fewest characters that complete a state (for the token budget) ----

const minLenMemo = new WeakMap<object, number>()

/** Shortest JSON text of a schema node (Infinity for a schema that must recurse forever). */
export function minLen(n0: SchemaNode, guard: Set<object> = new Set()): number {
  const n = resolve(n0)
  const memo = minLenMemo.get(n)
  if (memo !== undefined) return memo
  if (guard.has(n)) return Number.POSITIVE_INFINITY
  guard.add(n)
  let v = 1
  switch (n.k) {
    case 'any':
    case 'number':
      v = 1
      break
    case 'string':
      v = 2 + n.min
      break
    case 'literal':
      v = Math.min(...n.values.map((x) => x.length))
      break
    case 'union':
      v = Math.min(...n.options.map((o) => minLen(o, guard)))
      break
    case 'array':
      v = 2 + n.min * minLen(n.items, guard) + Math.max(0, n.min - 1)
      break
    case 'object': {
      const req = [...n.required]
      v =
        2 +
        req.reduce((s, k) => s + k.length + 3 + minLen(n.props.get(k)!, guard), 0) +
        Math.max(0, req.length - 1)
      break
    }
  }
  guard.delete(n)
  minLenMemo.set(n, v)
  return v
}

function pairCost(n: ObjNode, key: string): number {
  return key.length + 3 + minLen(schemaOfKey(n, key) ?? anyNode())
}

/** Fewest characters from this frame (ready for its next character) to a complete value. */
function minRest(f: Frame): number {
  switch (f.t) {
    case 'D':
      return 0
    case 'V':
      return minLen(f.n) + minRest(f.up)
    case 'L':
      return Math.min(...f.rest.map((r) => r.length)) + minRest(f.up)
    case 'N':
      return (f.ph === 'start' || f.ph === 'sign' || f.ph === 'dot' ? 1 : 0) + minRest(f.up)
    case 'S': {
      const esc = f.esc === 1 ? 1 : f.esc >= 2 ? 6 - f.esc : 0
      return esc + Math.max(0, f.min - f.len - (f.esc > 0 ? 1 : 0)) + 1 + minRest(f.up)
    }
    case 'A': {
      const item = minLen(f.n.items)
      const up = minRest(f.up)
      if (f.ph === 'after') return (f.count >= f.n.min ? 1 : (f.n.min - f.count) * (item + 1) + 1) + up
      if (f.ph === 'open' && f.n.min === 0) return 1 + up
      const k = Math.max(1, f.n.min - f.count)
      return k * item + (k - 1) + 1 + up
    }
    case 'O': {
      const n = f.n
      const up = minRest(f.up)
      const req = requiredLeft(n, f.seen)
      const reqCost = req.reduce((s, k) => s + pairCost(n, k), 0)
      switch (f.ph) {
        case 'open':
          return reqCost + Math.max(0, req.length - 1) + 1 + up
        case 'after':
          return reqCost + req.length + 1 + up
        case 'comma': {
          if (req.length > 0) return reqCost + (req.length - 1) + 1 + up
          const opt = n.keys.filter((k) => !f.seen.includes(k)).map((k) => pairCost(n, k))
          if (n.extra !== null) opt.push(3 + minLen(n.extra))
          return Math.min(...opt) + 1 + up
        }
        case 'colon': {
          const key = f.seen[f.seen.length - 1]!
          return 1 + minLen(schemaOfKey(n, key) ?? anyNode()) + reqCost + req.length + 1 + up
        }
        case 'key': {
          let best = Number.POSITIVE_INFINITY
          for (const k of keyCandidates(n, f.seen, f.kb)) {
            const others = req.filter((r) => r !== k)
            const c =
              k.length -
              f.kb.length +
              2 +
              minLen(schemaOfKey(n, k)!) +
              others.reduce((s, r) => s + pairCost(n, r), 0) +
              others.length +
              1
            best = Math.min(best, c)
          }
          if (n.extra !== null) best = Math.min(best, 2 + minLen(n.extra) + reqCost + req.length + 1)
          return best + up
        }
      }
    }
  }
}

export function minCompletion(state: State): number {
  let best = Number.POSITIVE_INFINITY
  for (const f of state) best = Math.min(best, minRest(f))
  return best
}
