// The span index of one datanet version: the token ids of all its contributions in one array and
// their suffix array, answering "which spans of this output occur in the datanet, and where".
//
// Loaded layout (all typed arrays over one file-sized buffer):
//   tokens    n × width bytes, width 2, 3 or 4 (smallest that holds the largest id + a flag bit);
//             the top bit marks the last token of a contribution, so no separator tokens are
//             stored and a match never runs from one contribution into the next
//   sa        n × uint32: compact start positions of the suffixes in sorted order
//   chunkAt   (chunks + 1) × uint32: position of each chunk's first token (then n)
//   docChunk  (docs + 1) × uint32: index of each contribution's first chunk (then chunks)
// That is width + 4 ≤ 8 bytes per corpus token plus a small per-chunk table.
//
// Suffix order is that of the corpus with a separator after each contribution that sorts below
// every token, so "the symbol at depth d" of a suffix is the separator when the token at depth
// d-1 carries the end flag; binary searches use exactly that rule.
import type { Hex } from '../crypto/hash.ts'
import { DatanetError } from './errors.ts'

export interface IndexedContribution {
  cid: string
  contributor: Hex
}

export interface IndexHeader {
  format: 'openlora-span-index/1'
  datanetId: Hex
  version: number
  root: Hex
  tokenizerId: string
  n: number
  width: 2 | 3 | 4
  chunks: number
  docs: IndexedContribution[]
}

/** A maximal span of the output found in the corpus: [outputOffset, outputOffset + length), SA rows [lo, hi). */
export interface FoundSpan {
  outputOffset: number
  length: number
  lo: number
  hi: number
}

export interface Location {
  doc: number
  /** chunk index within the contribution */
  chunk: number
  /** token offset of the position within that chunk's tokens */
  offsetInChunk: number
}

export const flagBit = (width: number): number => (width === 2 ? 0x8000 : width === 3 ? 0x800000 : 0x80000000)

export class SpanIndex {
  readonly header: IndexHeader
  readonly n: number
  readonly bytesLoaded: number
  private readonly tokens: Uint8Array
  private readonly sa: Uint32Array
  private readonly chunkAt: Uint32Array
  private readonly docChunk: Uint32Array
  private readonly raw: (p: number) => number
  private readonly flag: number

  constructor(
    header: IndexHeader,
    tokens: Uint8Array,
    sa: Uint32Array,
    chunkAt: Uint32Array,
    docChunk: Uint32Array
  ) {
    this.header = header
    this.n = header.n
    this.tokens = tokens
    this.sa = sa
    this.chunkAt = chunkAt
    this.docChunk = docChunk
    this.flag = flagBit(header.width)
    if (sa.length !== header.n || tokens.length < header.n * header.width)
      throw new DatanetError('INDEX_INVALID', 'span index arrays do not match its header')
    if (header.width === 2) {
      const u16 = new Uint16Array(tokens.buffer, tokens.byteOffset, header.n)
      this.raw = (p) => u16[p]!
    } else if (header.width === 3) {
      this.raw = (p) => tokens[3 * p]! | (tokens[3 * p + 1]! << 8) | (tokens[3 * p + 2]! << 16)
    } else {
      const u32 = new Uint32Array(tokens.buffer, tokens.byteOffset, header.n)
      this.raw = (p) => u32[p]!
    }
    this.bytesLoaded = tokens.byteLength + sa.byteLength + chunkAt.byteLength + docChunk.byteLength
  }

  /** The raw arrays, for writing the index to disk. */
  arrays(): { tokens: Uint8Array; sa: Uint32Array; chunkAt: Uint32Array; docChunk: Uint32Array } {
    return { tokens: this.tokens, sa: this.sa, chunkAt: this.chunkAt, docChunk: this.docChunk }
  }

  token(p: number): number {
    return (this.raw(p) & ~this.flag) >>> 0
  }

  /** Symbol of the suffix at p at the given depth; -1 is the separator after a contribution. */
  private sym(p: number, depth: number): number {
    if (depth > 0 && (this.raw(p + depth - 1) & this.flag) !== 0) return -1
    return (this.raw(p + depth) & ~this.flag) >>> 0
  }

  /** Rows of [lo, hi) whose symbol at `depth` equals q (they are contiguous). */
  private narrow(lo: number, hi: number, depth: number, q: number): [number, number] {
    let a = lo
    let b = hi
    while (a < b) {
      const m = (a + b) >>> 1
      if (this.sym(this.sa[m]!, depth) < q) a = m + 1
      else b = m
    }
    const start = a
    b = hi
    while (a < b) {
      const m = (a + b) >>> 1
      if (this.sym(this.sa[m]!, depth) <= q) a = m + 1
      else b = m
    }
    return [start, a]
  }

  /** Longest prefix of out[i..] that occurs in the corpus, and the SA rows where it occurs. */
  longestMatchAt(out: readonly number[], i: number): { length: number; lo: number; hi: number } {
    let lo = 0
    let hi = this.n
    let len = 0
    while (i + len < out.length) {
      const [a, b] = this.narrow(lo, hi, len, out[i + len]!)
      if (a >= b) break
      lo = a
      hi = b
      len++
    }
    return { length: len, lo, hi }
  }

  /**
   * Every maximal span of `out` of at least minLength tokens that occurs in the corpus: a span
   * starting at i is maximal when it ends after the span found at i - 1 (else it lies inside it).
   * Overlapping maximal spans are all returned.
   */
  findSpans(out: readonly number[], minLength: number): FoundSpan[] {
    const spans: FoundSpan[] = []
    let prevEnd = 0
    for (let i = 0; i < out.length; i++) {
      const m = this.longestMatchAt(out, i)
      const end = i + m.length
      if (m.length >= minLength && end > prevEnd) spans.push({ outputOffset: i, ...m })
      prevEnd = Math.max(prevEnd, end)
    }
    return spans
  }

  /** Corpus positions of SA rows [lo, hi), at most `cap` of them in suffix order, sorted by position. */
  occurrences(lo: number, hi: number, cap: number): number[] {
    const out: number[] = []
    for (let k = lo; k < hi && out.length < cap; k++) out.push(this.sa[k]!)
    return out.sort((a, b) => a - b)
  }

  get docCount(): number {
    return this.header.docs.length
  }

  docStart(d: number): number {
    return this.chunkAt[this.docChunk[d]!]!
  }

  docTokens(d: number): number {
    return this.docStart(d + 1) - this.docStart(d)
  }

  /** Last index i in arr[from, to) with arr[i] <= v. */
  private static lastAtMost(arr: Uint32Array, from: number, to: number, v: number): number {
    let a = from
    let b = to
    while (a < b) {
      const m = (a + b) >>> 1
      if (arr[m]! <= v) a = m + 1
      else b = m
    }
    return a - 1
  }

  locate(pos: number): Location {
    if (pos < 0 || pos >= this.n)
      throw new RangeError(`position ${pos} outside the corpus of ${this.n} tokens`)
    const chunk = SpanIndex.lastAtMost(this.chunkAt, 0, this.header.chunks, pos)
    const doc = SpanIndex.lastAtMost(this.docChunk, 0, this.docCount, chunk)
    return { doc, chunk: chunk - this.docChunk[doc]!, offsetInChunk: pos - this.chunkAt[chunk]! }
  }
}
