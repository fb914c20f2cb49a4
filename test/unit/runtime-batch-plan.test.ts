// planPasses: how one step's rows become ONNX Runtime passes over KV-cache row ranges (the rules
// GroupQueryAttention imposes), checked without a session.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { planPasses } from '../../src/runtime/model/step-plan.ts'

const big = (xs: number[]) => BigInt64Array.from(xs, (x) => BigInt(x))

test('first prompts of different lengths share one right-padded pass; rows between are dummies', () => {
  const lens = Int32Array.of(0, 7, 0, 0)
  const passes = planPasses(
    [
      { seq: 2, tokens: [7, 8], slot: 1 },
      { seq: 0, tokens: [1, 2, 3], slot: 2 }
    ],
    lens
  )
  assert.is(passes.length, 1)
  const p = passes[0]!
  assert.equal([p.lo, p.n, p.S], [0, 3, 3])
  assert.equal(p.ids, big([1, 2, 3, 0, 0, 0, 7, 8, 0]))
  // the dummy (row 1, which holds 7 cached tokens) gets one token and no past, and writes nothing
  assert.equal([...p.seqlens], [2, 0, 1])
  assert.equal([...p.newCount], [3, 0, 2])
  assert.equal(p.newPos, big([0, 1, 2, 0, 0, 0, 0, 1, 2]))
  // each row's own last token: row 0 position 2, row 2 position 1
  assert.equal(p.lastIndex[0], 2n)
  assert.equal(p.lastIndex[2], 7n)
  assert.equal(p.outputs.sort(), [
    [0, 2],
    [1, 0]
  ])
  assert.equal([...lens], [3, 7, 2, 0])
})

test('decode rows share one pass; then each prefill chunk over a past runs alone', () => {
  const lens = Int32Array.of(4, 9, 6, 0)
  const passes = planPasses(
    [
      { seq: 2, tokens: [11], slot: 1 },
      { seq: 1, tokens: [20, 21, 22], slot: 0 },
      { seq: 0, tokens: [10], slot: 0 },
      { seq: 3, tokens: [30, 31], slot: 2 }
    ],
    lens
  )
  // order: first prompt (seq 3), decode (seqs 0-2 with seq 1 as a dummy), chunk over a past (seq 1)
  assert.equal(
    passes.map((p) => [p.lo, p.n, p.S]),
    [
      [3, 1, 2],
      [0, 3, 1],
      [1, 1, 3]
    ]
  )
  const decode = passes[1]!
  assert.equal([...decode.seqlens], [4, 0, 6])
  assert.equal(decode.ids, big([10, 0, 11]))
  assert.equal(decode.newPos, big([4, 0, 6]))
  assert.equal([...decode.newCount], [1, 0, 1])
  assert.equal(decode.lastIndex, big([0, 1, 2]))
  assert.equal(decode.outputs.sort(), [
    [0, 2],
    [2, 0]
  ])
  const chunk = passes[2]!
  assert.equal([...chunk.seqlens], [9 + 3 - 1])
  assert.equal(chunk.newPos, big([9, 10, 11]))
  assert.equal(chunk.lastIndex, big([2]))
  assert.equal([...lens], [5, 12, 7, 2])
})

test.run()
