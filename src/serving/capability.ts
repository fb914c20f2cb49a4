// What a node advertises comes from a CapabilitySource the composition root passes in. The node
// ships a source that knows only the hardware; the serving engine replaces it with one that knows
// its models, adapter tiers, queue and price. `changed` tells the advert service to re-publish
// (debounced), so a source dispatches it whenever what `capabilities()` returns has changed.
import type { Hex } from '../crypto/hash.ts'

export interface GpuInfo {
  name: string
  memoryMb: number
  driver: string
}

export interface Hardware {
  cpu: { model: string; cores: number; ramMb: number }
  gpus: GpuInfo[]
}

export interface ServedModel {
  /** modelId (docs/INTERFACES.md) */
  id: string
  weightsHash: Hex
  /** the model family (runtime/model/families: 'llama', 'qwen3', 'gemma2', …); absent from older nodes */
  family?: string
}

export type AdapterTier = 'hot' | 'warm' | 'cold'
export const ADAPTER_TIERS: readonly AdapterTier[] = ['hot', 'warm', 'cold']

export interface Capabilities {
  hardware: Hardware
  executionProvider: 'cpu' | 'cuda'
  models: ServedModel[]
  /** adapter CIDs per tier; the advert lists the first ones and Bloom-filters the rest */
  adapters: Record<AdapterTier, readonly string[]>
  queueDepth: number
  freeSlots: number
  /** wei per 1,000 tokens, decimal string (docs/INTERFACES.md "Price and amount") */
  pricePer1kTokens: string
  /** present when the node trains LoRA adapters for peers (/openlora/train, docs/TRAINING.md) */
  train?: TrainCapability
}

/** What a node that takes training jobs advertises. */
export interface TrainCapability {
  /** wei per 1,000 trained tokens (the tokens the loss scores, over every step), decimal string */
  pricePer1kTokens: string
  /** the model ids it trains on (a subset of the models it serves) */
  models: string[]
}

export interface CapabilitySource extends EventTarget {
  capabilities(): Capabilities | Promise<Capabilities>
}

/** A source whose content is set from outside; `update` merges and dispatches `changed`. */
export class StaticCapabilitySource extends EventTarget implements CapabilitySource {
  #caps: Capabilities

  constructor(caps: Capabilities) {
    super()
    this.#caps = caps
  }

  capabilities(): Capabilities {
    return this.#caps
  }

  update(patch: Partial<Capabilities>): void {
    this.#caps = { ...this.#caps, ...patch }
    this.dispatchEvent(new Event('changed'))
  }
}

export function emptyCapabilities(hardware: Hardware, pricePer1kTokens = '0'): Capabilities {
  return {
    hardware,
    executionProvider: hardware.gpus.length > 0 ? 'cuda' : 'cpu',
    models: [],
    adapters: { hot: [], warm: [], cold: [] },
    queueDepth: 0,
    freeSlots: 0,
    pricePer1kTokens
  }
}

/** Narrows what is advertised (e.g. the chain service: only adapters registered on-chain, H7). */
export type CapabilityFilter = (caps: Capabilities) => Capabilities | Promise<Capabilities>

/** A capability source the node advertises from; `use()` swaps in a richer one (the engine's). */
export interface NodeCapabilities extends CapabilitySource {
  use(source: CapabilitySource): void
  /**
   * Adds a filter over whatever source is in use (kept across `use()`); the returned function
   * removes it. `changed` tells the adverts to re-publish (the filter now lets more through).
   */
  restrict(filter: CapabilityFilter): { changed(): void; remove(): void }
}

declare module '../common/service.ts' {
  interface NodeComponents {
    capabilities: NodeCapabilities
  }
}
