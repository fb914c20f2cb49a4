// What the datanet commands share: opening the node's data directory (its lock keeps a running
// node and a command from writing the same LevelDB at once), the store, and output helpers.
import { join } from 'node:path'
import { Level } from 'level'
import { DatanetStore } from '../../../attribution/datanet-store.ts'
import { ProvenanceStore } from '../../../attribution/provenance-store.ts'
import { createLogger, type Logger } from '../../../common/log.ts'
import type { NodeConfig } from '../../config/schema.ts'
import { openDataDir } from '../../datadir.ts'

export interface OpenStore {
  store: DatanetStore
  provenance: ProvenanceStore
  config: NodeConfig
  log: Logger
  close(): Promise<void>
}

/**
 * Datanet chunks and span indexes live under <dataDir>/datanets (as the node's attribution service
 * keeps them, src/attribution/extension.ts); records and adapter provenance in the node's LevelDB.
 */
export async function openDatanetStore(config: NodeConfig): Promise<OpenStore> {
  const log = createLogger('datanet', { level: config.log.level })
  const dir = openDataDir(config.dataDir)
  const db = new Level<string, Uint8Array>(dir.dbDir, { valueEncoding: 'view' })
  try {
    await db.open()
  } catch (err) {
    dir.release()
    throw err
  }
  const store = new DatanetStore({ db, dataDir: join(dir.path, 'datanets'), logger: log })
  return {
    store,
    provenance: new ProvenanceStore(db),
    config,
    log,
    async close() {
      await db.close()
      dir.release()
    }
  }
}

export function print(json: boolean, value: unknown, human: () => string): void {
  console.log(json ? JSON.stringify(value) : human())
}
