// H5 (docs/THREATS.md), the funded tree bound to the receipts: a pool's root commits (merkle.ts
// binding) to each adapter run's budget and the EIP-712 digests of the receipts its leaves were
// computed from, and the published pool carries those signed receipts. checkPoolBinding redoes
// the node's computation from them — every receipt checked in full and signed by the one operator
// that funded the pool, the binding recomputed, the leaves recomputed with the node's own rule
// (runShares) — so an operator that shifted shares between contributors of a declared datanet is
// caught: either its tree does not follow from the receipts it committed to, or it committed to
// receipts other than those its clients verified (poolsBoundTo: a client finds the digest of
// the receipt it holds, or finds it missing from the claim that paid its channel).
import { type Address, getAddress, type Hex } from 'viem'
import { poolBinding, runShares } from '../../chain/pool-attribution.ts'
import type { PublishedPools } from '../../chain/published-pools.ts'
import { adapterIdOf, receiptDigest, verifyReceipt } from './receipt.ts'

type PublishedPool = PublishedPools['pools'][number]

export type PoolBindingCheck =
  | { ok: true; operator: Address; receipts: number }
  | { ok: false; reason: string }

/**
 * Re-derives a published pool from its receipts. `operator`: the funder as the chain says
 * (PoolFunded's node), when the caller read it; else the receipts' own operator is reported.
 */
export async function checkPoolBinding(
  pool: PublishedPool,
  opts: { operator?: Address } = {}
): Promise<PoolBindingCheck> {
  const bad = (reason: string): PoolBindingCheck => ({ ok: false, reason: `pool ${pool.poolId}: ${reason}` })
  if (!pool.binding || !pool.runs) return bad('published without the receipts its tree is bound to')
  let operator = opts.operator ? getAddress(opts.operator) : undefined
  const leaves = new Map<Address, bigint>()
  let count = 0
  for (const run of pool.runs) {
    const jobs = []
    for (const entry of run.receipts) {
      if (entry.receipt === undefined) return bad(`receipt ${entry.digest} is not published`)
      const v = await verifyReceipt(entry.receipt)
      if (!v.ok) return bad(`receipt ${entry.digest} fails its ${v.check} check: ${v.message}`)
      const b = v.receipt.body
      if (receiptDigest(b, v.receipt.eip712) !== entry.digest)
        return bad(`receipt ${entry.digest} has another digest: it was changed`)
      if (adapterIdOf(b.adapter) !== run.adapterId)
        return bad(
          `receipt ${entry.digest} is for adapter ${adapterIdOf(b.adapter)}, not the run's ${run.adapterId}`
        )
      operator ??= getAddress(b.operator)
      if (getAddress(b.operator) !== operator)
        return bad(`receipt ${entry.digest} is signed by ${b.operator}, the pool was funded by ${operator}`)
      jobs.push({ amountDue: b.amountDue, attribution: b.attribution })
      count++
    }
    for (const [account, share] of runShares(BigInt(run.budget), jobs, pool.datanetId))
      leaves.set(account, (leaves.get(account) ?? 0n) + share)
  }
  const binding = poolBinding(
    pool.runs.map((r) => ({
      adapterId: r.adapterId,
      budget: BigInt(r.budget),
      digests: r.receipts.map((x) => x.digest)
    }))
  )
  if (binding !== pool.binding) return bad('its binding is not the hash of its runs and receipts')
  const published = new Map(pool.leaves.map((l) => [getAddress(l.account), BigInt(l.amount)]))
  for (const [account, amount] of leaves) {
    const got = published.get(account) ?? 0n
    if (got !== amount)
      return bad(
        `${account} gets ${got} wei; the receipts it is bound to give ${amount}: shares were shifted`
      )
  }
  for (const [account, amount] of published)
    if (!leaves.has(account) && amount > 0n)
      return bad(`${account} gets ${amount} wei; the receipts it is bound to credit it nothing`)
  return {
    ok: true,
    operator: operator ?? getAddress('0x0000000000000000000000000000000000000000'),
    receipts: count
  }
}

/** The pools (by id) whose tree is bound to the receipt with this EIP-712 digest. */
export function poolsBoundTo(file: PublishedPools, digest: Hex): string[] {
  const d = digest.toLowerCase()
  return file.pools
    .filter((p) => p.runs?.some((r) => r.receipts.some((x) => x.digest.toLowerCase() === d)))
    .map((p) => p.poolId)
}
