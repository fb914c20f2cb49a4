// The warm tier of the AdapterStore: decoded fp32 adapters in RAM, least recently used first out
// once their bytes pass the budget. Only bookkeeping: the store decides what moves between tiers
// and tells its listeners, so evictions come back to it as a list of CIDs.
export class WarmTier<A> {
  // Map iteration order is insertion order: delete + set moves an entry to the young end.
  private readonly entries = new Map<string, { adapter: A; bytes: number }>()
  private used = 0
  readonly budget: number

  constructor(budget: number) {
    this.budget = budget
  }

  get size(): number {
    return this.entries.size
  }

  /** bytes of the decoded adapters held */
  get bytes(): number {
    return this.used
  }

  has(cid: string): boolean {
    return this.entries.has(cid)
  }

  cids(): string[] {
    return [...this.entries.keys()]
  }

  /** The adapter, made the most recently used; undefined when it is not warm. */
  get(cid: string): A | undefined {
    const w = this.entries.get(cid)
    if (w === undefined) return undefined
    this.entries.delete(cid)
    this.entries.set(cid, w)
    return w.adapter
  }

  /**
   * Holds the adapter as the most recently used and evicts the least recently used others until
   * the tier is within budget again; returns the evicted CIDs, oldest first. An adapter bigger
   * than the whole budget stays until the caller drops it (overBudget).
   */
  put(cid: string, adapter: A, bytes: number): string[] {
    this.delete(cid)
    this.entries.set(cid, { adapter, bytes })
    this.used += bytes
    const evicted: string[] = []
    for (const old of this.entries.keys()) {
      if (this.used <= this.budget) break
      if (old === cid) continue
      this.delete(old)
      evicted.push(old)
    }
    return evicted
  }

  overBudget(): boolean {
    return this.used > this.budget
  }

  delete(cid: string): void {
    const w = this.entries.get(cid)
    if (w === undefined) return
    this.entries.delete(cid)
    this.used -= w.bytes
  }
}
