import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  buildSpanIndex,
  type CorpusDoc,
  loadSpanIndex,
  writeSpanIndex
} from '../../src/attribution/index-file.ts'
import type { SpanIndex } from '../../src/attribution/span-index.ts'
import { rng } from './attribution-fixtures.ts'

const ZERO = `0x${'0'.repeat(64)}` as const
const meta = { datanetId: ZERO, version: 1, root: ZERO, tokenizerId: 'test' }
const doc = (contributor: string, ...chunkTokens: number[][]): CorpusDoc => ({
  cid: `cid-${contributor}`,
  contributor: contributor as `0x${string}`,
  chunkTokens
})

/** Reference: for each output start, the longest prefix found inside one contribution, and where. */
function naive(docs: CorpusDoc[], out: number[]) {
  const flat = docs.map((d) => d.chunkTokens.flat())
  const starts: number[] = []
  let p = 0
  for (const f of flat) {
    starts.push(p)
    p += f.length
  }
  return out.map((_, i) => {
    let best = 0
    let where: number[] = []
    flat.forEach((f, d) => {
      for (let s = 0; s < f.length; s++) {
        let l = 0
        while (i + l < out.length && s + l < f.length && f[s + l] === out[i + l]) l++
        if (l > best) {
          best = l
          where = []
        }
        if (l === best && l > 0) where.push(starts[d]! + s)
      }
    })
    return { length: best, where: where.sort((a, b) => a - b) }
  })
}

function naiveSpans(docs: CorpusDoc[], out: number[], min: number) {
  const m = naive(docs, out)
  const spans: { outputOffset: number; length: number }[] = []
  let prevEnd = 0
  m.forEach((x, i) => {
    if (x.length >= min && i + x.length > prevEnd) spans.push({ outputOffset: i, length: x.length })
    prevEnd = Math.max(prevEnd, i + x.length)
  })
  return spans
}

const spansOf = (idx: SpanIndex, out: number[], min: number) =>
  idx.findSpans(out, min).map((s) => ({ outputOffset: s.outputOffset, length: s.length }))

test('overlapping spans from two contributions are both found, exactly', () => {
  const a = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
  const b = [6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
  const idx = buildSpanIndex([doc('0xa', a), doc('0xb', b)], meta)
  const out = [99, ...a, 11, 12, 13, 14, 15, 98]
  assert.equal(spansOf(idx, out, 4), [
    { outputOffset: 1, length: 10 },
    { outputOffset: 6, length: 10 }
  ])
  const [s1, s2] = idx.findSpans(out, 4)
  assert.equal(idx.occurrences(s1!.lo, s1!.hi, 10), [0])
  assert.equal(idx.occurrences(s2!.lo, s2!.hi, 10), [10])
  assert.equal(idx.locate(10), { doc: 1, chunk: 0, offsetInChunk: 0 })
})

test('a match never runs from one contribution into the next', () => {
  const idx = buildSpanIndex([doc('0xa', [1, 2, 3, 4]), doc('0xb', [5, 6, 7, 8])], meta)
  assert.is(idx.longestMatchAt([3, 4, 5, 6], 0).length, 2)
  assert.is(idx.longestMatchAt([4, 5], 0).length, 1)
  assert.equal(spansOf(idx, [1, 2, 3, 4, 5, 6, 7, 8], 3), [
    { outputOffset: 0, length: 4 },
    { outputOffset: 4, length: 4 }
  ])
})

test('spans crossing a chunk boundary are found and located in both chunks', () => {
  const idx = buildSpanIndex([doc('0xa', [1, 2, 3, 4, 5], [6, 7, 8, 9], [10, 11])], meta)
  const [s] = idx.findSpans([4, 5, 6, 7, 8, 9, 10], 3)
  assert.equal({ o: s!.outputOffset, l: s!.length }, { o: 0, l: 7 })
  const pos = idx.occurrences(s!.lo, s!.hi, 10)[0]!
  assert.equal(idx.locate(pos), { doc: 0, chunk: 0, offsetInChunk: 3 })
  assert.equal(idx.locate(pos + 6), { doc: 0, chunk: 2, offsetInChunk: 0 })
})

test('repeats: every occurrence of a repeated span is listed', () => {
  const idx = buildSpanIndex([doc('0xa', [7, 8, 9, 7, 8, 9, 7, 8, 9]), doc('0xb', [1, 7, 8, 9])], meta)
  const m = idx.longestMatchAt([7, 8, 9], 0)
  assert.is(m.length, 3)
  assert.equal(idx.occurrences(m.lo, m.hi, 100), [0, 3, 6, 10])
  assert.equal(idx.occurrences(m.lo, m.hi, 2).length, 2)
})

test('no match: unseen tokens and runs shorter than the minimum give no spans', () => {
  const idx = buildSpanIndex([doc('0xa', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])], meta)
  assert.equal(idx.findSpans([50, 51, 52, 53, 54, 55, 56, 57, 58], 8), [])
  assert.equal(idx.findSpans([1, 2, 3, 4, 5, 6, 7, 50], 8), [])
  assert.equal(idx.findSpans([], 8), [])
  assert.is(idx.findSpans([1, 2, 3, 4, 5, 6, 7, 8], 8).length, 1)
})

test('random corpora over tiny alphabets: longest matches, occurrences and spans equal a brute-force search', () => {
  const r = rng(11)
  for (let trial = 0; trial < 150; trial++) {
    const alpha = 2 + Math.floor(r() * 4)
    const big = trial % 3 === 0 ? 1 << 20 : 0 // some trials use ids that need 3-byte storage
    const docs: CorpusDoc[] = Array.from({ length: 1 + Math.floor(r() * 5) }, (_, d) =>
      doc(
        `0x${d}`,
        ...Array.from({ length: 1 + Math.floor(r() * 3) }, () =>
          Array.from({ length: Math.floor(r() * 12) }, () => big + Math.floor(r() * alpha))
        )
      )
    )
    const idx = buildSpanIndex(docs, meta)
    const out = Array.from({ length: 1 + Math.floor(r() * 20) }, () => big + Math.floor(r() * (alpha + 1)))
    const ref = naive(docs, out)
    out.forEach((_, i) => {
      const m = idx.longestMatchAt(out, i)
      assert.is(m.length, ref[i]!.length, `trial ${trial} start ${i}`)
      if (m.length > 0) assert.equal(idx.occurrences(m.lo, m.hi, 1e9), ref[i]!.where)
    })
    assert.equal(spansOf(idx, out, 2), naiveSpans(docs, out, 2))
  }
})

test('an index written to disk loads back with the same answers and ≤ 8 bytes per token', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'olsa-'))
  try {
    const r = rng(5)
    for (const base of [0, 1 << 20]) {
      const docs = Array.from({ length: 20 }, (_, d) =>
        doc(
          `0x${d}`,
          ...Array.from({ length: 3 }, () => Array.from({ length: 200 }, () => base + Math.floor(r() * 50)))
        )
      )
      const idx = buildSpanIndex(docs, meta)
      const file = join(dir, `x${base}.olsa`)
      await writeSpanIndex(file, idx)
      const back = await loadSpanIndex(file)
      assert.equal(back.header, idx.header)
      const out = docs[7]!.chunkTokens[1]!.slice(50, 120)
      assert.equal(back.findSpans(out, 8), idx.findSpans(out, 8))
      assert.is(back.findSpans(out, 8)[0]!.length, 70)
      const perToken = (back.bytesLoaded - (docs.length + 1) * 4 - (60 + 1) * 4) / back.n
      assert.ok(perToken <= (base === 0 ? 6 : 7), `bytes per token ${perToken}`)
    }
    const bad = join(dir, 'bad.olsa')
    writeFileSync(bad, 'OLSPAN01junk')
    try {
      await loadSpanIndex(bad)
      assert.unreachable('loaded a corrupt index')
    } catch (err) {
      assert.is((err as { code?: string }).code, 'INDEX_INVALID')
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
