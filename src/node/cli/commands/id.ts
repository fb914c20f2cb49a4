// `openlora id`: the peer id and operator address of a data directory (created on first use).

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { createLogger } from '../../../common/log.ts'
import type { Command } from '../../cli/command.ts'
import { loadIdentity } from '../../identity.ts'
import { NODE_VERSION } from '../../version.ts'
import { configFromFlags, configOptions } from './shared.ts'

export const idCommand: Command = {
  name: 'id',
  summary: "print this node's peer id and operator (reward) address",
  options: { ...configOptions, json: { type: 'boolean', description: 'print JSON' } },
  async run({ values }) {
    const config = configFromFlags(values)
    const keysDir = join(config.dataDir, 'keys')
    mkdirSync(keysDir, { recursive: true, mode: 0o700 })
    const id = await loadIdentity(keysDir, createLogger('id', { level: config.log.level }))
    const out = {
      peerId: id.peerId.toString(),
      operator: id.operator.address,
      dataDir: config.dataDir,
      version: NODE_VERSION
    }
    if (values.json === true) console.log(JSON.stringify(out))
    else console.log(`peer id   ${out.peerId}\noperator  ${out.operator}\ndata dir  ${out.dataDir}`)
    return 0
  }
}
