// Turns the receipts behind a batch of vouchers into the attribution a claim reports, by the same
// rule Settlement.claim caps it with, so the contract never refuses it for rounding:
// - vouchers are grouped into runs of equal adapterId, as the contract walks them; a run's pool is
//   the sum of its vouchers' floored pool shares (splitPayment().pool);
// - each datanet that the run's adapter registration declares (weight bps) gets a budget of
//   floor(runPool × bps / BPS), exactly the cap the contract adds for it;
// - the budget is divided over the contributors the run's receipts credit for that datanet,
//   weighted by amountDue × datanet bp × contributor bp, each share floored.
// What the floors leave, budgets with no credited contributor, datanets the chain does not know
// and adapters without registration stay unattributed: the contract credits them to the protocol
// treasury (role 3, L2 in docs/THREATS.md). So no datanet's total ever exceeds its cap.
// Each pool's tree is bound (H5) to its runs' budgets and the EIP-712 digests of the receipts it
// was computed from: the on-chain commitment fixes them, and anyone holding the published receipts
// recomputes the leaves, so shifting shares between contributors shows.
import { type Address, encodeAbiParameters, getAddress, type Hex, keccak256 } from 'viem'
import type { Attribution } from './client.ts'
import { buildSumTree, type SumTree } from './merkle.ts'
import { BPS, splitPayment } from './shares.ts'
import type { JobAttribution, ReceiptRecord } from './store.ts'

export interface VoucherJobs {
  adapterId: Hex
  increase: bigint
  receipts: ReceiptRecord[]
}

/** One datanet an adapter's on-chain registration declares, with its weight in basis points. */
export interface DeclaredDatanet {
  id: Hex
  bps: number
}

/** One adapter run's part of a pool: its budget and the receipts that credit the datanet. */
export interface PlannedRun {
  adapterId: Hex
  budget: bigint
  receipts: ReceiptRecord[]
}

export interface PlannedPool {
  datanetId: Hex
  /** bound to `binding` (H5): the root commits to the runs and receipts it was planned from */
  tree: SumTree
  binding: Hex
  runs: PlannedRun[]
}

export interface PlannedAttribution {
  attributions: Attribution[]
  pools: PlannedPool[]
  /** the claim's whole datanet pool, attributed or not */
  poolTotal: bigint
}

const lower = (h: Hex) => h.toLowerCase() as Hex
/** Settlement.MAX_ATTRIBUTIONS */
export const MAX_ATTRIBUTIONS = 64

/** A job as the pool plan reads it: what it owed and whom its receipt credits. */
export interface PlanJob {
  amountDue: string | bigint
  attribution?: JobAttribution
}

/**
 * One adapter run's budget for one datanet split over the contributors the run's jobs credit
 * for it, weighted by amountDue × datanet bp × contributor bp, each share floored. The node plans
 * with it and anyone re-checks a published pool with it (src/protocols/infer/pool-binding.ts).
 */
export function runShares(budget: bigint, jobs: readonly PlanJob[], datanetId: Hex): Map<Address, bigint> {
  const id = lower(datanetId)
  const weights = new Map<Address, bigint>()
  for (const j of jobs) {
    const a = j.attribution
    if (!a) continue
    for (const d of a.datanets) {
      if (lower(d.id) !== id) continue
      for (const c of a.contributors) {
        const w = BigInt(j.amountDue) * BigInt(d.bp) * BigInt(c.bp)
        if (w <= 0n) continue
        const account = getAddress(c.address)
        weights.set(account, (weights.get(account) ?? 0n) + w)
      }
    }
  }
  const sum = [...weights.values()].reduce((s, x) => s + x, 0n)
  const out = new Map<Address, bigint>()
  for (const [account, w] of weights) {
    const share = (budget * w) / sum
    if (share > 0n) out.set(account, share)
  }
  return out
}

/** The digest a receipt record is bound by: its EIP-712 receipt digest (what the client verified). */
export function receiptLeaf(r: Pick<ReceiptRecord, 'digest' | 'jobId' | 'amountDue'>): Hex {
  // a record without a signed receipt (a test's, or one from before H5) is bound by what it says;
  // a published pool built from one cannot be checked against receipts (pool-binding.ts says so)
  return (
    r.digest ??
    keccak256(encodeAbiParameters([{ type: 'bytes' }, { type: 'uint256' }], [r.jobId, BigInt(r.amountDue)]))
  )
}

/** What a pool's tree is bound to (H5): every run's adapter, budget and receipts, in order. */
export function poolBinding(
  runs: readonly { adapterId: Hex; budget: bigint; digests: readonly Hex[] }[]
): Hex {
  return keccak256(
    encodeAbiParameters(
      [
        {
          type: 'tuple[]',
          components: [
            { name: 'adapterId', type: 'bytes32' },
            { name: 'budget', type: 'uint256' },
            { name: 'digests', type: 'bytes32[]' }
          ]
        }
      ],
      [runs.map((r) => ({ adapterId: r.adapterId, budget: r.budget, digests: [...r.digests] }))]
    )
  )
}

export function planAttribution(
  vouchers: readonly VoucherJobs[],
  declared: (adapterId: Hex) => readonly DeclaredDatanet[],
  knownDatanet: (id: Hex) => boolean
): PlannedAttribution {
  const perDatanet = new Map<Hex, { leaves: Map<Address, bigint>; runs: PlannedRun[] }>()
  let poolTotal = 0n
  for (let i = 0; i < vouchers.length; ) {
    const adapterId = lower(vouchers[i]!.adapterId)
    let runPool = 0n
    const receipts: ReceiptRecord[] = []
    for (; i < vouchers.length && lower(vouchers[i]!.adapterId) === adapterId; i++) {
      runPool += splitPayment(vouchers[i]!.increase).pool
      receipts.push(...vouchers[i]!.receipts)
    }
    poolTotal += runPool
    if (runPool === 0n || /^0x0+$/.test(adapterId)) continue
    for (const d of declared(adapterId)) {
      const id = lower(d.id)
      if (!knownDatanet(id)) continue
      const budget = (runPool * BigInt(d.bps)) / BPS
      const shares = runShares(budget, receipts, id)
      if (shares.size === 0) continue
      const pool = perDatanet.get(id) ?? { leaves: new Map<Address, bigint>(), runs: [] }
      for (const [account, share] of shares)
        pool.leaves.set(account, (pool.leaves.get(account) ?? 0n) + share)
      // the receipts that credit this datanet: exactly what the shares were computed from
      const used = receipts.filter((r) => r.attribution?.datanets.some((x) => lower(x.id) === id))
      pool.runs.push({ adapterId, budget, receipts: used })
      perDatanet.set(id, pool)
    }
  }
  // Settlement funds at most MAX_ATTRIBUTIONS pools a claim ("too many" otherwise): the largest
  // are kept, the rest of the pool goes to the protocol like any unattributed share
  const kept = [...perDatanet.entries()]
    .map(([id, p]) => ({ id, p, total: [...p.leaves.values()].reduce((a, b) => a + b, 0n) }))
    .sort((x, y) => (x.total === y.total ? (x.id < y.id ? -1 : 1) : x.total > y.total ? -1 : 1))
    .slice(0, MAX_ATTRIBUTIONS)
    .map(({ id, p }) => [id, p] as const)
  const pools: PlannedPool[] = []
  for (const [datanetId, p] of kept.sort(([a], [b]) => (a < b ? -1 : 1))) {
    const binding = poolBinding(
      p.runs.map((r) => ({ adapterId: r.adapterId, budget: r.budget, digests: r.receipts.map(receiptLeaf) }))
    )
    const leaves = [...p.leaves.entries()].map(([account, amount]) => ({ account, amount }))
    pools.push({ datanetId, tree: buildSumTree(leaves, binding), binding, runs: p.runs })
  }
  return {
    attributions: pools.map((p) => ({ datanetId: p.datanetId, root: p.tree.root, total: p.tree.total })),
    pools,
    poolTotal
  }
}
