// The per-step token mask of constrained decoding (as LoRAX/vLLM do it with outlines-style
// grammars): the vocabulary is a trie of token texts, and each step walks it with the JSON
// automaton's state, pruning every subtree whose prefix the grammar refuses, so a step costs the
// number of trie nodes the grammar still allows, not vocabulary × token length. A token is also
// refused when what would remain could not be closed within the tokens left (each remaining
// token adds at least one character), so output ends as complete JSON even at max_tokens.
import type { ResponseFormatSpec } from './format.ts'
import {
  canFinish,
  initialState,
  isClosed,
  minCompletion,
  type State,
  step,
  stepText
} from './json-automaton.ts'
import { anyNode, compileJsonSchema, type SchemaNode } from './json-schema.ts'

interface TrieNode {
  children: Map<string, TrieNode>
  /** tokens whose text ends exactly here */
  ids: number[]
}

/** What the mask needs of a tokenizer (runtime/tokenizer.ts Tokenizer fits). */
export interface VocabTokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): ArrayLike<number>
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string
}

/** The vocabulary of one model as the mask walks it (built once per model, lazily). */
export class Vocabulary {
  readonly size: number
  readonly root: TrieNode = { children: new Map(), ids: [] }
  readonly texts: string[]
  /**
   * Tokens that are plain string content (no quote, backslash or control character): inside an
   * unbounded JSON string every one of them is allowed, so the mask takes them as one list and
   * walks only `specialRoot`, the trie of the other tokens (most real vocabularies are ~99 % plain,
   * so a step inside a string costs the few hundred special tokens, not the vocabulary).
   */
  readonly plainIds: number[] = []
  readonly specialRoot: TrieNode = { children: new Map(), ids: [] }

  constructor(tokenizer: VocabTokenizer, size: number) {
    this.size = size
    this.texts = new Array<string>(size)
    // A token's text is what it adds after an ordinary token: decoders that drop a leading space
    // at the start of the text (SentencePiece) would otherwise change the token's characters.
    const anchorIds = Array.from(tokenizer.encode('a', { addSpecialTokens: false }))
    const anchor = anchorIds.length > 0 ? [anchorIds[anchorIds.length - 1]!] : []
    const anchorText = anchor.length > 0 ? tokenizer.decode(anchor, { skipSpecialTokens: true }) : ''
    for (let id = 0; id < size; id++) {
      let t = ''
      try {
        const full = tokenizer.decode([...anchor, id], { skipSpecialTokens: true })
        t = full.startsWith(anchorText) ? full.slice(anchorText.length) : ''
      } catch {
        t = ''
      }
      // special tokens decode to nothing; a part of a multi-byte character decodes to U+FFFD:
      // neither can be checked against the grammar, so neither is ever allowed
      if (t.includes('\uFFFD')) t = ''
      this.texts[id] = t
      if (t === '') continue
      insert(this.root, t, id)
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
      if (/["\\\u0000-\u001f]/.test(t)) insert(this.specialRoot, t, id)
      else this.plainIds.push(id)
    }
  }
}

function insert(root: TrieNode, text: string, id: number): void {
  let node = root
  for (const c of text) {
    let next = node.children.get(c)
    if (!next) {
      next = { children: new Map(), ids: [] }
      node.children.set(c, next)
    }
    node = next
  }
  node.ids.push(id)
}

export function compileFormat(f: ResponseFormatSpec): SchemaNode {
  if (f.type === 'json_object')
    return { k: 'object', props: new Map(), keys: [], required: new Set(), extra: anyNode(1) }
  let schema: unknown
  try {
    schema = JSON.parse(f.schema)
  } catch (err) {
    throw new SyntaxError(`responseFormat.schema is not JSON: ${(err as Error).message}`)
  }
  return compileJsonSchema(schema)
}

/** One generation's constraint: mask the logits before each draw, advance with the drawn token. */
export class JsonConstraint {
  readonly #vocab: Vocabulary
  readonly #eos: readonly number[]
  #state: State

  constructor(root: SchemaNode, vocab: Vocabulary, eosTokenIds: readonly number[]) {
    this.#vocab = vocab
    this.#eos = eosTokenIds
    this.#state = initialState(root)
  }

  /** The JSON value is closed: nothing may follow it. */
  get closed(): boolean {
    return isClosed(this.#state)
  }

  get complete(): boolean {
    return canFinish(this.#state)
  }

  /**
   * The tokens allowed next, given `tokensLeft` (this one included). Falls back to ignoring the
   * budget when nothing fits it, and to the end tokens when the grammar allows nothing at all.
   */
  allowed(tokensLeft: number): { ids: number[]; eos: boolean } {
    const budget = tokensLeft - 1
    const ids: number[] = []
    const eos = canFinish(this.#state)
    if (!isClosed(this.#state)) this.#collect(budget, ids)
    if (ids.length === 0 && !eos && !isClosed(this.#state))
      this.#walk(this.#vocab.root, this.#state, Number.POSITIVE_INFINITY, ids)
    return { ids, eos: eos || ids.length === 0 }
  }

  /** Sets every disallowed logit to -Infinity (in place). */
  mask(logits: Float32Array, tokensLeft: number): void {
    const { ids, eos } = this.allowed(tokensLeft)
    const keep = new Float32Array(ids.length)
    for (let j = 0; j < ids.length; j++) keep[j] = logits[ids[j]!]!
    const eosKeep = this.#eos.map((id) => logits[id]!)
    logits.fill(Number.NEGATIVE_INFINITY)
    for (let j = 0; j < ids.length; j++) logits[ids[j]!] = keep[j]!
    if (eos) for (let j = 0; j < this.#eos.length; j++) logits[this.#eos[j]!] = eosKeep[j]!
  }

  advance(tokenId: number): void {
    if (this.#eos.includes(tokenId)) return
    this.#state = stepText(this.#state, this.#vocab.texts[tokenId] ?? '')
  }

  #collect(budget: number, out: number[]): void {
    const st = this.#state
    const f = st.length === 1 ? st[0]! : undefined
    // inside an unbounded string that already has its minimum length, plain tokens keep the
    // string open and change nothing the budget sees: all of them or none, then the rest by walk
    if (f?.t === 'S' && f.esc === 0 && f.max === Number.POSITIVE_INFINITY && f.len >= f.min) {
      if (minCompletion(st) <= budget) for (const id of this.#vocab.plainIds) out.push(id)
      this.#walk(this.#vocab.specialRoot, st, budget, out)
      return
    }
    this.#walk(this.#vocab.root, st, budget, out)
  }

  #walk(node: TrieNode, state: State, budget: number, out: number[]): void {
    for (const [c, child] of node.children) {
      const next = step(state, c)
      if (next.length === 0) continue
      if (child.ids.length > 0 && minCompletion(next) <= budget) for (const id of child.ids) out.push(id)
      if (child.children.size > 0) this.#walk(child, next, budget, out)
    }
  }
}
