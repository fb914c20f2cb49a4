// Prepares a swarm node's data directory before the node starts (a running node holds the lock):
// its keys (so the operator can be funded and named before start), the demo adapters it holds in
// its cold store, the demo datanet (created with the same creation record and contributions in
// the same order on every node, so every copy has the same id and version root) and the adapters'
// provenance pointing at that datanet, which is what makes receipts carry span attribution.
import { join } from 'node:path'
import { Level } from 'level'
import type { Address } from 'viem'
import { DatanetStore } from '../../attribution/datanet-store.ts'
import { ProvenanceStore } from '../../attribution/provenance-store.ts'
import { silentLogger } from '../../common/log.ts'
import type { Hex } from '../../crypto/hash.ts'
import { modelStoreDir } from '../../protocols/infer/extension.ts'
import { loadPeftAdapter } from '../../runtime/adapters/peft.ts'
import { AdapterStore } from '../../runtime/adapters/store.ts'
import { modelIdOf } from '../../runtime/model/config.ts'
import { readModelConfig } from '../../runtime/model/index.ts'
import { openDataDir } from '../datadir.ts'
import { loadIdentity } from '../identity.ts'

export interface DemoDatanet {
  name: string
  owner: Address
  createdAt: number
  /** contributions in order: text and contributor */
  contributions: { text: string; contributor: Address }[]
}

export interface SeedInput {
  dir: string
  modelDir: string
  modelId: string
  /** adapter directories this node holds at start */
  adapterDirs: string[]
  /** every demo adapter's CID (provenance is kept for all: a node may fetch any of them) */
  allAdapterCids: string[]
  datanet: DemoDatanet
}

export interface SeededNode {
  peerId: string
  operator: Address
  datanetId: Hex
  root: Hex
}

const ALL_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']

export async function seedNodeDir(input: SeedInput): Promise<SeededNode> {
  const dd = openDataDir(input.dir)
  try {
    const id = await loadIdentity(dd.keysDir, silentLogger)
    const db = new Level<string, Uint8Array>(dd.dbDir, { valueEncoding: 'view' })
    await db.open()
    let datanetId: Hex
    let root: Hex
    try {
      const store = new DatanetStore({ db, dataDir: join(dd.path, 'datanets'), logger: silentLogger })
      const dn = await store.createDatanet({
        name: input.datanet.name,
        owner: input.datanet.owner,
        createdAt: input.datanet.createdAt
      })
      for (const c of input.datanet.contributions) await store.contribute(dn.id, c)
      const v = await store.publish(dn.id)
      datanetId = dn.id as Hex
      root = v.root as Hex
      const provenance = new ProvenanceStore(db)
      for (const cid of input.allAdapterCids)
        await provenance.set(cid, { datanets: [{ id: dn.id, version: v.version, bp: 10_000 }] })
    } finally {
      await db.close()
    }
    const modelConfig = await readModelConfig(input.modelDir)
    const modelId = modelIdOf(modelConfig, input.modelDir)
    const adapters = new AdapterStore(
      { dir: modelStoreDir(dd.path, modelId) },
      {
        model: {
          modelId,
          config: modelConfig,
          pools: {
            slots: 64,
            maxRank: 16,
            targets: ALL_TARGETS,
            write: () => {
              throw new Error('offline store: adapters are not made hot here')
            },
            clear: () => {}
          }
        },
        loadAdapter: loadPeftAdapter
      }
    )
    await adapters.start()
    try {
      for (const d of input.adapterDirs) await adapters.import(d)
    } finally {
      await adapters.stop()
    }
    return { peerId: id.peerId.toString(), operator: id.operator.address, datanetId, root }
  } finally {
    dd.release()
  }
}
