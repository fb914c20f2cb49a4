// The hot tier of the AdapterStore: which adapter holds which slot of the model's SlotPools, and
// how many running sequences pin each slot. A slot no sequence pins may be taken for another
// adapter, least recently used first; a pinned one never is, so eviction cannot touch a slot in
// use. Only bookkeeping: the store writes the pools and tells its listeners.
export class HotSlots {
  // Map iteration order is insertion order: delete + set (touch) moves an entry to the young end.
  private readonly slotByCid = new Map<string, number>()
  private readonly cidBySlot: (string | undefined)[]
  private readonly refs: number[]
  private readonly free: number[] = []

  constructor(slots: number) {
    this.cidBySlot = new Array(slots).fill(undefined)
    this.refs = new Array(slots).fill(0)
    // slot 0 is reserved for "no adapter"; hand out low slots first
    for (let s = slots - 1; s >= 1; s--) this.free.push(s)
  }

  get size(): number {
    return this.slotByCid.size
  }

  has(cid: string): boolean {
    return this.slotByCid.has(cid)
  }

  slotOf(cid: string): number | undefined {
    return this.slotByCid.get(cid)
  }

  cids(): string[] {
    return [...this.slotByCid.keys()]
  }

  /** Makes the adapter the most recently used. */
  touch(cid: string): void {
    const slot = this.slotByCid.get(cid)
    if (slot === undefined) return
    this.slotByCid.delete(cid)
    this.slotByCid.set(cid, slot)
  }

  pin(slot: number): void {
    this.refs[slot]! += 1
  }

  unpin(slot: number): void {
    this.refs[slot]! -= 1
  }

  pinned(slot: number): boolean {
    return this.refs[slot]! > 0
  }

  /** slots that at least one running sequence holds */
  pinnedCount(): number {
    let n = 0
    for (const r of this.refs) if (r > 0) n += 1
    return n
  }

  /**
   * A slot for a new adapter: a free one, else the least recently used one no sequence pins,
   * whose adapter is evicted (returned); undefined when every slot is pinned.
   */
  take(): { slot: number; evicted?: string } | undefined {
    const slot = this.free.pop()
    if (slot !== undefined) return { slot }
    for (const [, s] of this.slotByCid) {
      if (this.refs[s] !== 0) continue
      const evicted = this.evict(s)
      this.free.pop()
      return { slot: s, ...(evicted !== undefined ? { evicted } : {}) }
    }
    return undefined
  }

  /** Records that `cid` now holds `slot` (taken with take()). */
  assign(cid: string, slot: number): void {
    this.cidBySlot[slot] = cid
    this.slotByCid.set(cid, slot)
  }

  /** Frees the slot; returns the adapter that held it. */
  evict(slot: number): string | undefined {
    const cid = this.cidBySlot[slot]
    if (cid === undefined) return undefined
    this.slotByCid.delete(cid)
    this.cidBySlot[slot] = undefined
    this.free.push(slot)
    return cid
  }
}
