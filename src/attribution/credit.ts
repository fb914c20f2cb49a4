// How spans turn into weights; used by the attributor and re-run by the verifier, so both
// compute identical basis points from the same span proofs.
//
// Each distinct span (datanet, version, outputOffset, length) is worth length × SPAN_CREDIT_SCALE
// credit units to its datanet, split evenly among the contributors it credits (one span proof
// per credited contributor). SPAN_CREDIT_SCALE = lcm(1..16) makes that split exact for up to
// MAX_CONTRIBUTORS_PER_SPAN contributors. Overlapping spans each count in full. A receipt lists at
// most MAX_RECEIPT_CONTRIBUTORS contributors: the ones with the most units (ties: lower address).
import type { Hex } from '../crypto/hash.ts'
import { MAX_RECEIPT_CONTRIBUTORS, SPAN_CREDIT_SCALE } from './constants.ts'
import type { SpanProof } from './types.ts'
import { toBasisPoints } from './weights.ts'

export function spanKey(s: Pick<SpanProof, 'datanet' | 'version' | 'outputOffset' | 'tokens'>): string {
  return `${s.datanet}@${s.version}:${s.outputOffset}:${s.tokens.length}`
}

export function weightsFromSpans(spans: readonly SpanProof[]): {
  datanets: { id: Hex; bp: number }[]
  contributors: { address: Hex; bp: number }[]
} {
  const groups = new Map<string, { datanet: Hex; length: number; contributors: Set<Hex> }>()
  for (const s of spans) {
    const k = spanKey(s)
    let g = groups.get(k)
    if (!g) groups.set(k, (g = { datanet: s.datanet, length: s.tokens.length, contributors: new Set() }))
    g.contributors.add(s.contribution.contributor)
  }
  const dn = new Map<string, bigint>()
  const ct = new Map<string, bigint>()
  for (const g of groups.values()) {
    const units = BigInt(g.length) * BigInt(SPAN_CREDIT_SCALE)
    dn.set(g.datanet, (dn.get(g.datanet) ?? 0n) + units)
    const each = units / BigInt(g.contributors.size)
    for (const c of g.contributors) ct.set(c, (ct.get(c) ?? 0n) + each)
  }
  return {
    datanets: toBasisPoints([...dn].map(([key, weight]) => ({ key, weight }))).map((r) => ({
      id: r.key as Hex,
      bp: r.bp
    })),
    contributors: toBasisPoints(topWeights(ct, MAX_RECEIPT_CONTRIBUTORS)).map((r) => ({
      address: r.key as Hex,
      bp: r.bp
    }))
  }
}

/** The `limit` largest weights, ties broken by the lower key, as toBasisPoints input. */
export function topWeights(m: Map<string, bigint>, limit: number): { key: string; weight: bigint }[] {
  return [...m]
    .sort((a, b) => (a[1] !== b[1] ? (a[1] > b[1] ? -1 : 1) : a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, limit)
    .map(([key, weight]) => ({ key, weight }))
}
