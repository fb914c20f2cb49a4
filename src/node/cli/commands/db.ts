// `openlora db check|repair`: the recovery path a corrupt database's error message names.
import { join } from 'node:path'
import { openDataDir } from '../../datadir.ts'
import { checkNodeDb, repairNodeDb } from '../../db.ts'
import type { Command } from '../command.ts'
import { configFromFlags, configOptions } from './shared.ts'

function withDataDir<T>(values: Record<string, unknown>, fn: (dataDir: string, dbDir: string) => Promise<T>) {
  const config = configFromFlags(values as never)
  // the node lock: never repair a database a running node has open
  const dd = openDataDir(config.dataDir)
  return fn(dd.path, join(dd.path, 'db')).finally(() => dd.release())
}

const checkCommand: Command = {
  name: 'db check',
  summary: "read every entry of this node's database (checksums verified); exit 1 if it is damaged",
  options: { ...configOptions, json: { type: 'boolean', description: 'print JSON' } },
  run: ({ values }) =>
    withDataDir(values, async (dataDir, dbDir) => {
      const r = await checkNodeDb(dbDir, dataDir)
      if (values.json === true) console.log(JSON.stringify({ ok: true, ...r }))
      else console.log(`database ${dbDir}: ok, ${r.entries} entries, ${r.bytes} bytes`)
      return 0
    })
}

const repairCommand: Command = {
  name: 'db repair',
  summary: "LevelDB repair of this node's database (back the data dir up first), then a check",
  options: configOptions,
  run: ({ values }) =>
    withDataDir(values, async (dataDir, dbDir) => {
      await repairNodeDb(dbDir)
      const r = await checkNodeDb(dbDir, dataDir)
      console.log(
        `database ${dbDir}: repaired, ${r.entries} entries readable. Start the node: it reconciles claims with the chain.`
      )
      return 0
    })
}

export const dbCommands: Command[] = [checkCommand, repairCommand]
