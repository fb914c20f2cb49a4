// The split of one voucher's increase, exactly as Settlement.claim computes it (per voucher, floor
// division, the node takes the remainder), so the node can report an attribution whose total the
// contract will accept and tests can check balances to the wei.
export const BPS = 10_000n
export const NODE_BPS = 7_000n
export const OWNER_BPS = 1_500n
export const POOL_BPS = 1_000n
export const PROTOCOL_BPS = 500n

export interface Split {
  node: bigint
  owner: bigint
  pool: bigint
  protocol: bigint
}

export function splitPayment(increase: bigint): Split {
  const owner = (increase * OWNER_BPS) / BPS
  const pool = (increase * POOL_BPS) / BPS
  const protocol = (increase * PROTOCOL_BPS) / BPS
  return { node: increase - owner - pool - protocol, owner, pool, protocol }
}

/** Splits `amount` by integer weights; the remainder goes to the largest fractional parts (ties by
 * order), so the parts always add up to `amount` exactly. */
export function splitByWeights<K>(
  amount: bigint,
  weights: ReadonlyArray<readonly [K, bigint]>
): Map<K, bigint> {
  const out = new Map<K, bigint>()
  const total = weights.reduce((s, [, w]) => s + w, 0n)
  if (total <= 0n || amount === 0n) return out
  let given = 0n
  const rema: { key: K; rem: bigint; i: number }[] = []
  weights.forEach(([key, w], i) => {
    const share = (amount * w) / total
    given += share
    out.set(key, (out.get(key) ?? 0n) + share)
    rema.push({ key, rem: (amount * w) % total, i })
  })
  rema.sort((a, b) => (a.rem === b.rem ? a.i - b.i : a.rem > b.rem ? -1 : 1))
  for (let k = 0; given < amount; k++, given++) {
    const key = rema[k % rema.length]!.key
    out.set(key, out.get(key)! + 1n)
  }
  return out
}
