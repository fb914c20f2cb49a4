// Turns the receipts behind a batch of vouchers into the attribution a claim reports: for each
// voucher, its datanet-pool share (splitPayment().pool) is divided over (datanet, contributor)
// pairs weighted by each job's amountDue × datanet bp × contributor bp; then one Merkle sum tree
// per datanet. Shares of jobs without contributors, or of datanets the chain does not know, stay
// unattributed (the contract gives them to the protocol), so the reported total never exceeds the
// pool and the claim is never refused for it.
import { type Address, getAddress, type Hex } from 'viem'
import type { Attribution } from './client.ts'
import { buildSumTree, type SumTree } from './merkle.ts'
import { splitByWeights, splitPayment } from './shares.ts'
import type { ReceiptRecord } from './store.ts'

export interface VoucherJobs {
  increase: bigint
  receipts: ReceiptRecord[]
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

export function planAttribution(
  vouchers: readonly VoucherJobs[],
  knownDatanet: (id: Hex) => boolean
): PlannedAttribution {
  const perDatanet = new Map<Hex, Map<Address, bigint>>()
  let poolTotal = 0n
  for (const v of vouchers) {
    const pool = splitPayment(v.increase).pool
    poolTotal += pool
    const weights = new Map<string, bigint>()
    for (const r of v.receipts) {
      const a = r.attribution
      if (!a || a.contributors.length === 0) continue
      for (const d of a.datanets) {
        const id = d.id.toLowerCase() as Hex
        if (!knownDatanet(id)) continue
        for (const c of a.contributors) {
          const w = BigInt(r.amountDue) * BigInt(d.bp) * BigInt(c.bp)
          if (w <= 0n) continue
          const key = `${id}|${getAddress(c.address)}`
          weights.set(key, (weights.get(key) ?? 0n) + w)
        }
      }
    }
    if (weights.size === 0) continue
    const parts = splitByWeights(
      pool,
      [...weights.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    )
    for (const [key, amount] of parts) {
      if (amount === 0n) continue
      const [id, account] = key.split('|') as [Hex, Address]
      const m = perDatanet.get(id) ?? new Map<Address, bigint>()
      m.set(account, (m.get(account) ?? 0n) + amount)
      perDatanet.set(id, m)
    }
  }
  const pools: PlannedPool[] = []
  for (const [datanetId, m] of [...perDatanet.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const leaves = [...m.entries()]
      .filter(([, amount]) => amount > 0n)
      .map(([account, amount]) => ({ account, amount }))
    if (leaves.length > 0) pools.push({ datanetId, tree: buildSumTree(leaves) })
  }
  return {
    attributions: pools.map((p) => ({ datanetId: p.datanetId, root: p.tree.root, total: p.tree.total })),
    pools,
    poolTotal
  }
}
