// The Earnings page: what the chain paid this node's channels, split by role the way Settlement
// splits each voucher increase (splitPayment: operator, adapter owner, contributor pool,
// protocol), what is still pending, the claims with their gas and transaction, and a time series
// for the chart. The split is summed per voucher increase, as the contract does, so the roles add
// up to each claim's total to the wei.
import type { Address } from 'viem'
import type { ChainService } from '../../chain/service.ts'
import { splitPayment } from '../../chain/shares.ts'

export interface PendingSample {
  t: number
  pending: bigint
}

type Roles = { operator: bigint; owner: bigint; pool: bigint; protocol: bigint }
const zero = (): Roles => ({ operator: 0n, owner: 0n, pool: 0n, protocol: 0n })
const str = (r: Roles) => ({
  operator: r.operator.toString(),
  owner: r.owner.toString(),
  pool: r.pool.toString(),
  protocol: r.protocol.toString()
})

function add(r: Roles, increase: bigint): void {
  const s = splitPayment(increase)
  r.operator += s.node
  r.owner += s.owner
  r.pool += s.pool
  r.protocol += s.protocol
}

export async function earnings(chain: ChainService, operator: Address, samples: readonly PendingSample[]) {
  const rewards = await chain.rewards()
  const claims = (await chain.store.allClaims()).sort((a, b) => a.at - b.at)
  const claimedByRole = zero()
  // chart points: one per claim (cumulative claimed by role) and one per pending sample
  const points: { t: number; operator: bigint; owner: bigint; pool: bigint; pending: bigint | null }[] = []
  const rows = claims.map((c) => {
    const mine = zero()
    for (const v of c.vouchers) add(mine, BigInt(v.increase))
    claimedByRole.operator += mine.operator
    claimedByRole.owner += mine.owner
    claimedByRole.pool += mine.pool
    claimedByRole.protocol += mine.protocol
    points.push({ t: c.at, ...claimedByRole, pending: null })
    return {
      txHash: c.txHash,
      at: c.at,
      vouchers: c.vouchers.length,
      total: c.total,
      gasUsed: c.gasUsed,
      byRole: str(mine)
    }
  })
  for (const s of samples) points.push({ t: s.t, operator: 0n, owner: 0n, pool: 0n, pending: s.pending })
  points.sort((a, b) => a.t - b.t)
  // claimed is cumulative: a sample's point carries the claims made up to its time
  let last = zero()
  for (const p of points) {
    if (p.pending === null) last = { operator: p.operator, owner: p.owner, pool: p.pool, protocol: 0n }
    else Object.assign(p, { operator: last.operator, owner: last.owner, pool: last.pool })
  }
  let pending = 0n
  const pendingByRole = zero()
  for (const u of await chain.store.unclaimed(operator)) {
    pending += u.unclaimed
    add(pendingByRole, u.unclaimed)
  }
  return {
    chain: true as const,
    node: operator,
    chainId: chain.endpoint.chainId,
    totals: {
      pending: pending.toString(),
      claimed: rewards.totals.claimed.toString(),
      earned: rewards.totals.earned.toString(),
      withdrawable: rewards.withdrawable.toString()
    },
    claimedByRole: str(claimedByRole),
    pendingByRole: str(pendingByRole),
    perAdapter: rewards.perAdapter.map((a) => ({
      adapterId: a.adapterId,
      pending: a.pending.toString(),
      claimed: a.claimed.toString(),
      earned: a.earned.toString(),
      vouchersClaimed: a.vouchersClaimed
    })),
    claims: rows.reverse(),
    series: points.map((p) => ({
      t: p.t,
      operator: p.operator.toString(),
      owner: p.owner.toString(),
      pool: p.pool.toString(),
      pending: p.pending === null ? null : p.pending.toString()
    }))
  }
}
