// Splits one step's rows into ONNX Runtime passes over contiguous KV-cache row ranges. Pure
// (no ORT), so its rules are unit-tested alone. GroupQueryAttention takes, per pass, either
//  - rows with no past, S tokens each, right-padded (its "first prompt" mode: each row's real
//    length in seqlens_k), or
//  - rows with exactly one new token each over any past (decode), or
//  - one row with several new tokens over a past (a later prefill chunk: batch 1 only).
// So a step runs: all first prompts in one pass, then every 1-token row in one pass, then each
// later prefill chunk alone.
//
// Rows of a pass's range that are not in it ride along as dummies: one padding token with no
// past (seqlens 0, the least work), and nothing of theirs is written back to the cache.

export interface PlanRow {
  seq: number
  tokens: number[]
  slot: number
}

export interface Pass {
  /** first KV row of the range and the number of rows */
  lo: number
  n: number
  /** tokens per row in this pass */
  S: number
  ids: BigInt64Array
  /** per row: total length after this pass − 1 (GroupQueryAttention's seqlens_k) */
  seqlens: Int32Array
  /** per row: flat index (b·S + position) of the position whose logits come back */
  lastIndex: BigInt64Array
  /** per row and token [n·S]: the cache position of each new token (consecutive per row) */
  newPos: BigInt64Array
  /** per row: how many of its new keys/values are real and go into the cache (0 = dummy) */
  newCount: Int32Array
  /** which step row each pass row answers: [step row index, pass row] */
  outputs: [number, number][]
}

function emptyPass(lo: number, n: number, S: number): Pass {
  return {
    lo,
    n,
    S,
    ids: new BigInt64Array(n * S),
    seqlens: new Int32Array(n),
    lastIndex: new BigInt64Array(n),
    newPos: new BigInt64Array(n * S),
    newCount: new Int32Array(n),
    outputs: []
  }
}

type Indexed = readonly [PlanRow, number]

function range(items: readonly Indexed[]): { lo: number; n: number } {
  let lo = Number.POSITIVE_INFINITY
  let hi = -1
  for (const [r] of items) {
    lo = Math.min(lo, r.seq)
    hi = Math.max(hi, r.seq)
  }
  return { lo, n: hi - lo + 1 }
}

/** Plans the passes; `lens` (tokens cached per KV row) is advanced to the lengths after the step. */
export function planPasses(rows: readonly PlanRow[], lens: Int32Array): Pass[] {
  const passes: Pass[] = []
  const indexed: Indexed[] = rows.map((r, i) => [r, i] as const)

  const first = indexed.filter(([r]) => r.tokens.length > 1 && lens[r.seq] === 0)
  if (first.length > 0) {
    const { lo, n } = range(first)
    const S = Math.max(...first.map(([r]) => r.tokens.length))
    const pass = emptyPass(lo, n, S)
    for (let b = 0; b < n; b++) pass.lastIndex[b] = BigInt(b * S)
    for (const [r, i] of first) {
      const b = r.seq - lo
      const L = r.tokens.length
      for (let k = 0; k < L; k++) pass.ids[b * S + k] = BigInt(r.tokens[k]!)
      for (let k = 0; k < S; k++) pass.newPos[b * S + k] = BigInt(k)
      pass.seqlens[b] = L - 1
      pass.lastIndex[b] = BigInt(b * S + L - 1)
      pass.newCount[b] = L
      pass.outputs.push([i, b])
    }
    passes.push(pass)
    for (const [r] of first) lens[r.seq] = r.tokens.length
  }

  const decode = indexed.filter(([r]) => r.tokens.length === 1)
  if (decode.length > 0) {
    const { lo, n } = range(decode)
    const pass = emptyPass(lo, n, 1)
    for (let b = 0; b < n; b++) pass.lastIndex[b] = BigInt(b)
    for (const [r, i] of decode) {
      const b = r.seq - lo
      pass.ids[b] = BigInt(r.tokens[0]!)
      pass.seqlens[b] = lens[r.seq]!
      pass.newPos[b] = BigInt(lens[r.seq]!)
      pass.newCount[b] = 1
      pass.outputs.push([i, b])
    }
    passes.push(pass)
    for (const [r] of decode) lens[r.seq]! += 1
  }

  for (const [r, i] of indexed) {
    if (r.tokens.length === 1 || first.some(([, j]) => j === i)) continue
    const S = r.tokens.length
    const past = lens[r.seq]!
    const pass = emptyPass(r.seq, 1, S)
    for (let k = 0; k < S; k++) {
      pass.ids[k] = BigInt(r.tokens[k]!)
      pass.newPos[k] = BigInt(past + k)
    }
    pass.seqlens[0] = past + S - 1
    pass.lastIndex[0] = BigInt(S - 1)
    pass.newCount[0] = S
    pass.outputs.push([i, 0])
    passes.push(pass)
    lens[r.seq] = past + S
  }
  return passes
}
