// Splits one step's rows into ONNX Runtime passes over contiguous KV-cache row ranges. Pure
// (no ORT), so its rules are unit-tested alone. GroupQueryAttention takes, per pass, either
//  - rows with no past, S tokens each, right-padded (its "first prompt" mode: each row's real
//    length in seqlens_k), or
//  - rows with exactly one new token each over any past (decode), or
//  - one row with several new tokens over a past (a later prefill chunk: batch 1 only).
// So a step runs: the first prompts (grouped where their row range holds no other cached data),
// then every 1-token row in one pass, then each later prefill chunk alone.
//
// Rows of the range that are not in a pass ride along as dummies. Their writes land only at or
// past their valid length (a dummy in a decode pass writes position `len`; one in a first-prompt
// pass must have len 0), and every row writes a position before it ever reads it, so dummies
// never change what a real row computes. The KV buffers hold maxSeqLen + 1 positions so a full
// row's dummy write still fits.

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
  slots: BigInt64Array
  /** per row: total length after this pass − 1 (GroupQueryAttention's seqlens_k) */
  seqlens: Int32Array
  /** per row: flat index (b·S + position) of the position whose logits come back */
  lastIndex: BigInt64Array
  /** which step row each pass row answers: [step row index, pass row] */
  outputs: [number, number][]
}

/** Plans the passes; `lens` (tokens cached per KV row) is advanced to the lengths after the step. */
export function planPasses(rows: readonly PlanRow[], lens: Int32Array): Pass[] {
  const passes: Pass[] = []
  const firstPrompts = rows
    .map((r, i) => [r, i] as const)
    .filter(([r]) => r.tokens.length > 1 && lens[r.seq] === 0)
    .sort((a, b) => a[0].seq - b[0].seq)
  // group consecutive first prompts while every row between them is empty (len 0)
  let group: (typeof firstPrompts)[number][] = []
  const flush = () => {
    if (group.length > 0) passes.push(firstPromptPass(group))
    group = []
  }
  for (const item of firstPrompts) {
    const prev = group.at(-1)
    if (prev) {
      let clear = true
      for (let s = prev[0].seq + 1; s < item[0].seq; s++) if (lens[s] !== 0) clear = false
      if (!clear) flush()
    }
    group.push(item)
  }
  flush()
  for (const p of passes) for (const [i] of p.outputs) lens[rows[i]!.seq]! += rows[i]!.tokens.length

  const decode = rows.map((r, i) => [r, i] as const).filter(([r]) => r.tokens.length === 1)
  if (decode.length > 0) {
    let lo = Number.POSITIVE_INFINITY
    let hi = -1
    for (const [r] of decode) {
      lo = Math.min(lo, r.seq)
      hi = Math.max(hi, r.seq)
    }
    const n = hi - lo + 1
    const pass = emptyPass(lo, n, 1)
    // real or dummy, a row's one token goes to position len
    for (let b = 0; b < n; b++) {
      pass.seqlens[b] = lens[lo + b]!
      pass.lastIndex[b] = BigInt(b)
    }
    for (const [r, i] of decode) {
      pass.ids[r.seq - lo] = BigInt(r.tokens[0]!)
      pass.slots[r.seq - lo] = BigInt(r.slot)
      pass.outputs.push([i, r.seq - lo])
    }
    passes.push(pass)
    for (const [r] of decode) lens[r.seq]! += 1
  }

  rows.forEach((r, i) => {
    if (r.tokens.length === 1 || passes.some((p) => p.S > 1 && p.outputs.some(([j]) => j === i))) return
    const S = r.tokens.length
    const pass = emptyPass(r.seq, 1, S)
    r.tokens.forEach((t, k) => {
      pass.ids[k] = BigInt(t)
    })
    pass.slots[0] = BigInt(r.slot)
    pass.seqlens[0] = lens[r.seq]! + S - 1
    pass.lastIndex[0] = BigInt(S - 1)
    pass.outputs.push([i, 0])
    passes.push(pass)
    lens[r.seq]! += S
  })
  return passes
}

function emptyPass(lo: number, n: number, S: number): Pass {
  return {
    lo,
    n,
    S,
    ids: new BigInt64Array(n * S),
    slots: new BigInt64Array(n),
    seqlens: new Int32Array(n),
    lastIndex: new BigInt64Array(n),
    outputs: []
  }
}

function firstPromptPass(group: (readonly [PlanRow, number])[]): Pass {
  const lo = group[0]![0].seq
  const n = group.at(-1)![0].seq - lo + 1
  const S = Math.max(...group.map(([r]) => r.tokens.length))
  const pass = emptyPass(lo, n, S)
  // dummies (empty rows in the range): one padding token at position 0
  for (let b = 0; b < n; b++) pass.lastIndex[b] = BigInt(b * S)
  for (const [r, i] of group) {
    const b = r.seq - lo
    r.tokens.forEach((t, k) => {
      pass.ids[b * S + k] = BigInt(t)
    })
    pass.slots[b] = BigInt(r.slot)
    pass.seqlens[b] = r.tokens.length - 1
    pass.lastIndex[b] = BigInt(b * S + r.tokens.length - 1)
    pass.outputs.push([i, b])
  }
  return pass
}
