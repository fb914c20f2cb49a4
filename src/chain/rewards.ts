// Rewards of a node operator: per adapter, what is pending (owed by the receipts the node's
// VoucherStore holds, less what the chain has paid: what the next claim will pay), what the chain has paid on its channels (claimed) and the node's share
// of that (earned), plus the credits it can withdraw now. Claimed and earned come from the chain's
// VoucherClaimed events, so they are right even for claims made before the store existed.
import { type Address, getAddress, type Hex } from 'viem'
import type { ChainClient } from './client.ts'
import { vouchersClaimedBy } from './events.ts'
import { splitPayment } from './shares.ts'
import type { VoucherStore } from './store.ts'

export interface AdapterRewards {
  adapterId: Hex
  /** wei the node's receipts are owed (Σ amountDue) that the chain has not paid yet */
  pending: bigint
  /** wei the chain has paid on this node's channels for the adapter */
  claimed: bigint
  /** the node operator's share of `claimed` */
  earned: bigint
  vouchersClaimed: number
}

export interface RewardsSummary {
  node: Address
  perAdapter: AdapterRewards[]
  totals: { pending: bigint; claimed: bigint; earned: bigint }
  /** credited to the node and not yet withdrawn (Settlement.withdrawCredits) */
  withdrawable: bigint
  /** whether `pending` comes from a VoucherStore (false: the store was not available) */
  hasPending: boolean
}

export async function rewardsSummary(
  chain: ChainClient,
  node: Address,
  opts: { store?: VoucherStore; fromBlock?: bigint } = {}
): Promise<RewardsSummary> {
  const who = getAddress(node)
  const rows = new Map<Hex, AdapterRewards>()
  const row = (adapterId: Hex) => {
    const k = adapterId.toLowerCase() as Hex
    let r = rows.get(k)
    if (!r) rows.set(k, (r = { adapterId: k, pending: 0n, claimed: 0n, earned: 0n, vouchersClaimed: 0 }))
    return r
  }
  for (const ev of await vouchersClaimedBy(chain, who, opts.fromBlock ?? 0n)) {
    const r = row(ev.adapterId)
    r.claimed += ev.paid
    r.earned += splitPayment(ev.paid).node
    r.vouchersClaimed++
  }
  if (opts.store)
    for (const u of await opts.store.unclaimed(who)) row(u.record.adapterId).pending += u.unclaimed
  const perAdapter = [...rows.values()].sort((a, b) => (a.adapterId < b.adapterId ? -1 : 1))
  const totals = { pending: 0n, claimed: 0n, earned: 0n }
  for (const r of perAdapter) {
    totals.pending += r.pending
    totals.claimed += r.claimed
    totals.earned += r.earned
  }
  return {
    node: who,
    perAdapter,
    totals,
    withdrawable: await chain.creditsOf(who),
    hasPending: opts.store != null
  }
}
