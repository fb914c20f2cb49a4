// The attribution a claim reports, as the Claimer plans it for one batch: it reads from the chain
// what planAttribution (pool-attribution.ts, pure) needs (each adapter's declared datanets as the
// contract reads them in this claim, and which datanets exist), and turns a planned pool into the
// record the store keeps so contributors' proofs survive a crash. Apart from the claim loop so the
// loop only decides when to send, and the chain reads behind a plan sit in one place.
import type { Hex } from 'viem'
import type { ChainClient } from './client.ts'
import { type DeclaredDatanet, type PlannedPool, planAttribution, receiptLeaf } from './pool-attribution.ts'
import type { PoolRecord } from './store.ts'

export class AttributionPlanner {
  /** only "exists" is cached: a datanet registered later is picked up by the next round */
  private readonly datanetKnown = new Set<Hex>()

  private readonly chain: ChainClient

  constructor(chain: ChainClient) {
    this.chain = chain
  }

  /** Plans the batch's attribution, leaving out the datanets the contract refused in this batch. */
  async plan(jobs: Parameters<typeof planAttribution>[0], refused: ReadonlySet<Hex>) {
    const ids = new Set<Hex>()
    const declared = new Map<Hex, DeclaredDatanet[]>()
    for (const j of jobs) {
      const adapterId = j.adapterId.toLowerCase() as Hex
      // the registration as the contract reads it in this claim (read per batch: it may change)
      if (
        !declared.has(adapterId) &&
        !/^0x0+$/.test(adapterId) &&
        j.receipts.some((r) => r.attribution?.contributors.length)
      ) {
        const a = await this.chain.getAdapter(adapterId)
        declared.set(
          adapterId,
          a.datanets.map((id, k) => ({ id: id.toLowerCase() as Hex, bps: Number(a.weightsBps[k]) }))
        )
      }
      for (const r of j.receipts)
        for (const d of r.attribution?.datanets ?? []) ids.add(d.id.toLowerCase() as Hex)
    }
    for (const id of ids) {
      if (!this.datanetKnown.has(id) && (await this.chain.datanetExists(id))) this.datanetKnown.add(id)
    }
    return planAttribution(
      jobs,
      (adapterId) => declared.get(adapterId.toLowerCase() as Hex) ?? [],
      (id) => this.datanetKnown.has(id) && !refused.has(id)
    )
  }
}

/** A planned pool as the store keeps it: leaves, and what the tree is bound to with its receipts. */
export function poolRecord(p: PlannedPool, createdAt: number): PoolRecord {
  return {
    root: p.tree.root,
    datanetId: p.datanetId,
    total: p.tree.total.toString(),
    leaves: p.tree.leaves.map((l) => ({ account: l.account, amount: l.amount.toString() })),
    binding: p.binding,
    runs: p.runs.map((r) => ({
      adapterId: r.adapterId,
      budget: r.budget.toString(),
      receipts: r.receipts.map((x) => ({
        digest: receiptLeaf(x),
        ...(x.receipt !== undefined ? { receipt: x.receipt } : {})
      }))
    })),
    createdAt
  }
}
