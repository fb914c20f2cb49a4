// LoRA slot pools: per targeted projection and layer, one A pool [slots, in, maxRank] and one B
// pool [slots, maxRank, out] (the hot tier), plus per KV-cache row an A/B buffer the graph reads
// as its `lora_A/B.L.T` inputs (zero-copy views, shared memory). A sequence's row is bound to its
// slot by one copy when it first runs with that slot (or the slot was rewritten since); steps
// then read the row buffers in place, never gathering from the pool. Writing an adapter into a
// slot is a memcpy-sized loop; the session never changes. Slot 0 stays zero ("no adapter").
// Ranks below maxRank are zero-padded (exact: the padded rank columns add 0).
import { OpenLoraError } from '../../common/errors.ts'
import { PROJECTIONS, projectionsOf } from './config.ts'
import { type ModelLayout, paddedIn, paddedOut } from './layout.ts'
import { type RowInput, sharedFloats } from './runner.ts'

export class SlotPoolError extends OpenLoraError<'SLOT_POOL_INVALID'> {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('SLOT_POOL_INVALID', message, details)
  }
}

/** One LoRA pair as PEFT stores it: A [r, in], B [out, r]; y += scale · B·A·x. */
export interface LoraPair {
  A: Float32Array
  B: Float32Array
  r: number
  scale: number
}

/** What a slot needs from an adapter (a PeftAdapter from adapters/peft.ts fits this shape). */
export interface AdapterWeights {
  layers: Map<number, Map<string, LoraPair>>
}

export interface SlotPools {
  readonly slots: number
  readonly maxRank: number
  readonly targets: string[]
  /** bytes one slot occupies across all pools */
  readonly bytesPerSlot: number
  /** copies A/B into the slot (scale folded into B); slot 0 is reserved = no adapter */
  write(slot: number, adapter: AdapterWeights): void
  clear(slot: number): void
}

export interface PoolOptions {
  slots: number
  maxRank: number
  targets: readonly string[]
}

interface Pool {
  layer: number
  target: string
  inn: number
  out: number
  /** the slots: [slots, inn, R] and [slots, R, out] */
  a: Float32Array
  b: Float32Array
  /** per KV-cache row: [rows, inn, R] and [rows, R, out], shared with the session's thread */
  rowA: Float32Array
  rowB: Float32Array
}

export class SlotPoolSet implements SlotPools {
  readonly slots: number
  readonly maxRank: number
  readonly targets: string[]
  readonly bytesPerSlot: number
  /** the per-row buffers as graph inputs (views of rows [lo, lo + n) per run) */
  readonly rowInputs: RowInput[] = []
  private readonly versions: Uint32Array
  private readonly pools: Pool[] = []
  private readonly byKey = new Map<string, Pool>()
  private readonly layout: ModelLayout

  constructor(
    layout: ModelLayout,
    opts: PoolOptions,
    /** KV-cache rows (maxBatch): each gets its own A/B buffers */
    rows: number,
    names: { a(l: number, t: string): string; b(l: number, t: string): string }
  ) {
    const cfg = layout.config
    for (const t of opts.targets) {
      if (!(PROJECTIONS as readonly string[]).includes(t)) {
        throw new SlotPoolError(
          `pool target "${t}" is not a projection; allowed: ${PROJECTIONS.join(', ')}`,
          {
            field: 'pool.targets',
            value: t
          }
        )
      }
    }
    if (!Number.isInteger(opts.slots) || opts.slots < 1 || opts.slots > 1_000_000) {
      throw new SlotPoolError(
        `pool.slots must be an integer in 1..1000000 (slot 0 is "no adapter"), got ${opts.slots}`,
        {
          field: 'pool.slots'
        }
      )
    }
    if (!Number.isInteger(opts.maxRank) || opts.maxRank < 1 || opts.maxRank > 4096) {
      throw new SlotPoolError(`pool.maxRank must be an integer in 1..4096, got ${opts.maxRank}`, {
        field: 'pool.maxRank'
      })
    }
    this.layout = layout
    this.slots = opts.slots
    this.maxRank = opts.maxRank
    // a projection the model lacks (gate_proj of a plain MLP) has no pool and no graph input
    const has = projectionsOf(cfg)
    this.targets = has.filter((t) => opts.targets.includes(t))
    let perSlot = 0
    for (let l = 0; l < cfg.numLayers; l++) {
      for (const t of this.targets) {
        const [inn, out] = layout.graphShape(t)
        const R = opts.maxRank
        const pool: Pool = {
          layer: l,
          target: t,
          inn,
          out,
          a: new Float32Array(opts.slots * inn * R),
          b: new Float32Array(opts.slots * R * out),
          rowA: sharedFloats(rows * inn * R),
          rowB: sharedFloats(rows * R * out)
        }
        this.pools.push(pool)
        this.byKey.set(`${l}/${t}`, pool)
        this.rowInputs.push({ name: names.a(l, t), data: pool.rowA, rowDims: [inn, R] })
        this.rowInputs.push({ name: names.b(l, t), data: pool.rowB, rowDims: [R, out] })
        perSlot += (inn + out) * R * 4
      }
    }
    this.bytesPerSlot = perSlot
    this.versions = new Uint32Array(opts.slots)
  }

  /** Changes whenever the slot's contents change (a row bound to an older version is re-copied). */
  version(slot: number): number {
    return this.versions[slot]!
  }

  /** Copies a slot's adapter into a KV-cache row's buffers (the graph reads rows, not slots). */
  bindRow(row: number, slot: number): void {
    const R = this.maxRank
    for (const p of this.pools) {
      const a = p.inn * R
      const b = R * p.out
      p.rowA.set(p.a.subarray(slot * a, (slot + 1) * a), row * a)
      p.rowB.set(p.b.subarray(slot * b, (slot + 1) * b), row * b)
    }
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 1 || slot >= this.slots) {
      throw new SlotPoolError(
        `slot ${slot} is out of range; writable slots are 1..${this.slots - 1} (0 = no adapter)`,
        {
          slot
        }
      )
    }
  }

  clear(slot: number): void {
    this.checkSlot(slot)
    this.versions[slot]! += 1
    const R = this.maxRank
    for (const p of this.pools) {
      p.a.fill(0, slot * p.inn * R, (slot + 1) * p.inn * R)
      p.b.fill(0, slot * R * p.out, (slot + 1) * R * p.out)
    }
  }

  write(slot: number, adapter: AdapterWeights): void {
    this.checkSlot(slot)
    // validate everything before touching the slot, so a bad adapter leaves the slot as it was
    for (const [l, mods] of adapter.layers) {
      if (!Number.isInteger(l) || l < 0 || l >= this.layout.config.numLayers) {
        throw new SlotPoolError(
          `adapter layer ${l} does not exist; the model has layers 0..${this.layout.config.numLayers - 1}`,
          { layer: l }
        )
      }
      for (const [t, pair] of mods) {
        if (!this.byKey.has(`${l}/${t}`)) {
          throw new SlotPoolError(
            `adapter targets ${t} but the slot pools hold only ${this.targets.join(', ') || 'no targets'}`,
            {
              layer: l,
              target: t
            }
          )
        }
        if (!Number.isInteger(pair.r) || pair.r < 1 || pair.r > this.maxRank) {
          throw new SlotPoolError(
            `adapter rank ${pair.r} at layer ${l} ${t} exceeds the pool's max rank ${this.maxRank}`,
            {
              layer: l,
              target: t,
              rank: pair.r,
              maxRank: this.maxRank
            }
          )
        }
        const [inn, out] = this.layout.modelShape(t)
        if (pair.A.length !== pair.r * inn || pair.B.length !== out * pair.r) {
          throw new SlotPoolError(
            `adapter tensors at layer ${l} ${t} have ${pair.A.length}/${pair.B.length} values; expected A [${pair.r}, ${inn}] and B [${out}, ${pair.r}]`,
            { layer: l, target: t }
          )
        }
      }
    }
    this.clear(slot)
    const R = this.maxRank
    const pad = this.layout.padFeature
    for (const [l, mods] of adapter.layers) {
      for (const [t, { A, B, r, scale }] of mods) {
        const p = this.byKey.get(`${l}/${t}`)!
        const [inn, out] = this.layout.modelShape(t)
        const mapIn = paddedIn(t) ? pad : (i: number) => i
        const mapOut = paddedOut(t) ? pad : (i: number) => i
        const aOff = slot * p.inn * R
        for (let k = 0; k < r; k++) {
          const row = k * inn
          for (let i = 0; i < inn; i++) p.a[aOff + mapIn(i) * R + k] = A[row + i]!
        }
        const bOff = slot * R * p.out
        for (let o = 0; o < out; o++) {
          const col = bOff + mapOut(o)
          for (let k = 0; k < r; k++) p.b[col + k * p.out] = B[o * r + k]! * scale
        }
      }
    }
  }
}
