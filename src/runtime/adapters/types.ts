// Types shared by the AdapterStore and its callers (engine, node wiring, adverts).
import type { Logger } from '../../common/log.ts'

export type Tier = 'hot' | 'warm' | 'cold'

/** What the store needs of a decoded PEFT adapter (structurally, loadPeftAdapter's result). */
export interface DecodedAdapter {
  cid?: string
  layers: Map<number, Map<string, { A: Float32Array; B: Float32Array; r: number }>>
}

/** What the store needs of the model's LoRA slot pools (src/runtime/model, INTERFACES.md). */
export interface AdapterSlotPools<A> {
  readonly slots: number
  readonly maxRank: number
  readonly targets: string[]
  write(slot: number, adapter: A): void
  clear(slot: number): void
}

export interface AdapterStoreInit {
  /** directory of this model's adapters (blobs, index); created if missing */
  dir: string
  /** RAM for decoded adapters. Default 2 GiB: 1,000 q/v rank-8 adapters of a 135M model fit. */
  warmBudgetBytes?: number
  /** an adapter file larger than this is refused before it is read (default 1 GiB) */
  maxAdapterBytes?: number
  /** last-use times are written in batches this often (default 30 s) */
  flushEveryMs?: number
}

export interface AdapterStoreComponents<A extends DecodedAdapter> {
  model: { modelId: string; config: unknown; pools: AdapterSlotPools<A> }
  /** decodes and checks a PEFT directory against the base model (loadPeftAdapter) */
  loadAdapter: (dir: string, config: never) => Promise<A>
  logger?: Logger
  /** told each load into the slot pool: the tier the adapter came from and how long it took */
  onLoad?: (from: 'warm' | 'cold', ms: number) => void
}

export interface AdapterLease {
  readonly cid: string
  readonly slot: number
  /** the tier the adapter was in when asked for */
  readonly from: Tier
  /** time from the call to a servable slot */
  readonly ms: number
  /** unpins the slot; idempotent */
  release(): void
}

export interface TierChange {
  cid: string
  /** the tier it is in now, or 'removed' */
  tier: Tier | 'removed'
}

export interface AdapterStoreStats {
  registered: number
  registeredBytes: number
  warm: number
  warmBytes: number
  warmBudgetBytes: number
  hot: number
  hotPinned: number
  slots: number
  hits: Record<Tier, number>
  coldLoads: number
  sharedLoads: number
  loadErrors: number
  evictions: { warm: number; hot: number }
  imports: number
}

export function adapterShape(adapter: DecodedAdapter): {
  rank: number
  targets: string[]
  fp32Bytes: number
} {
  let rank = 0
  let fp32Bytes = 0
  const targets = new Set<string>()
  // a LoRA on a fused module (Phi-3's qkv_proj) gives its projections one shared A: count it once
  const seen = new Set<unknown>()
  for (const layer of adapter.layers.values()) {
    for (const [target, t] of layer) {
      targets.add(target)
      rank = Math.max(rank, t.r)
      for (const m of [t.A, t.B]) {
        if (!seen.has(m)) fp32Bytes += m.byteLength
        seen.add(m)
      }
    }
  }
  return { rank, targets: [...targets].sort(), fp32Bytes }
}
