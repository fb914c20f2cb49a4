// The training provenance of adapters this node serves, by adapter CID, as declared by the
// adapter's owner (`openlora datanet provenance`). A PEFT adapter's CID covers only its two files,
// so provenance travels beside it (metadata, adverts) and is kept here, checked, per CID.
import type { AbstractLevel } from 'abstract-level'
import type { AnyLevel } from './datanet-store.ts'
import { validateProvenance } from './provenance.ts'
import type { AdapterProvenance } from './types.ts'

const CID = /^[a-z2-7]{20,120}$/

export class ProvenanceStore {
  private readonly db: AbstractLevel<unknown, string, AdapterProvenance>
  constructor(db: AnyLevel) {
    this.db = db.sublevel<string, AdapterProvenance>('adapter-provenance', { valueEncoding: 'json' }) as never
  }

  /** Records (or replaces) an adapter's provenance after validating it; returns the normalised form. */
  async set(adapterCid: string, provenance: unknown): Promise<AdapterProvenance> {
    if (!CID.test(adapterCid)) throw new TypeError(`not an adapter CID: ${adapterCid.slice(0, 80)}`)
    const p = validateProvenance(provenance)
    await this.db.put(adapterCid, p)
    return p
  }

  async get(adapterCid: string | null): Promise<AdapterProvenance | undefined> {
    if (adapterCid === null) return undefined
    return (await this.db.get(adapterCid)) ?? undefined
  }

  async delete(adapterCid: string): Promise<void> {
    await this.db.del(adapterCid)
  }

  async list(): Promise<{ adapter: string; provenance: AdapterProvenance }[]> {
    const out: { adapter: string; provenance: AdapterProvenance }[] = []
    for await (const [adapter, provenance] of this.db.iterator()) out.push({ adapter, provenance })
    return out
  }
}
