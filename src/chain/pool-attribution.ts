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
import { type Address, getAddress, type Hex } from 'viem'
import type { Attribution } from './client.ts'
import { buildSumTree, type SumTree } from './merkle.ts'
import { BPS, splitPayment } from './shares.ts'
import type { ReceiptRecord } from './store.ts'

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

export interface PlannedPool {
  datanetId: Hex
  tree: SumTree
}

export interface PlannedAttribution {
  attributions: Attribution[]
  pools: PlannedPool[]
  /** the claim's whole datanet pool, attributed or not */
  poolTotal: bigint
}

const lower = (h: Hex) => h.toLowerCase() as Hex

/** Contributor weights per datanet over one run's receipts. */
function runWeights(receipts: readonly ReceiptRecord[]): Map<Hex, Map<Address, bigint>> {
  const out = new Map<Hex, Map<Address, bigint>>()
  for (const r of receipts) {
    const a = r.attribution
    if (!a || a.contributors.length === 0) continue
    for (const d of a.datanets) {
      const id = lower(d.id)
      const m = out.get(id) ?? new Map<Address, bigint>()
      for (const c of a.contributors) {
        const w = BigInt(r.amountDue) * BigInt(d.bp) * BigInt(c.bp)
        if (w <= 0n) continue
        const account = getAddress(c.address)
        m.set(account, (m.get(account) ?? 0n) + w)
      }
      if (m.size > 0) out.set(id, m)
    }
  }
  return out
}

export function planAttribution(
  vouchers: readonly VoucherJobs[],
  declared: (adapterId: Hex) => readonly DeclaredDatanet[],
  knownDatanet: (id: Hex) => boolean
): PlannedAttribution {
  const perDatanet = new Map<Hex, Map<Address, bigint>>()
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
    const weights = runWeights(receipts)
    for (const d of declared(adapterId)) {
      const id = lower(d.id)
      const w = weights.get(id)
      if (!w || !knownDatanet(id)) continue
      const budget = (runPool * BigInt(d.bps)) / BPS
      const sum = [...w.values()].reduce((s, x) => s + x, 0n)
      const m = perDatanet.get(id) ?? new Map<Address, bigint>()
      for (const [account, x] of w) {
        const share = (budget * x) / sum
        if (share > 0n) m.set(account, (m.get(account) ?? 0n) + share)
      }
      if (m.size > 0) perDatanet.set(id, m)
    }
  }
  const pools: PlannedPool[] = []
  for (const [datanetId, m] of [...perDatanet.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const leaves = [...m.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([account, amount]) => ({ account, amount }))
    pools.push({ datanetId, tree: buildSumTree(leaves) })
  }
  return {
    attributions: pools.map((p) => ({ datanetId: p.datanetId, root: p.tree.root, total: p.tree.total })),
    pools,
    poolTotal
  }
}
