// `openlora rewards withdraw-contribution ACCOUNT`: pays a data contributor its leaves in the
// contributor pools a node funded, from the node's published pools file (M1, docs/THREATS.md):
// no running node and no cooperation needed. Each tree is rebuilt from the file and checked
// against the pool's on-chain commitment before its proof is submitted; anyone may submit (the
// key pays the gas), the tokens go to ACCOUNT.
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { getAddress, isAddress } from 'viem'
import { CHAIN_ENDPOINT_FILE, POOLS_FILE } from '../../../chain/extension.ts'
import {
  MAX_PUBLISHED_LEAVES,
  parsePublishedPools,
  withdrawFromPublished
} from '../../../chain/published-pools.ts'
import type { Command } from '../../cli/command.ts'
import { UsageError } from '../../cli/command.ts'
import { chainOptions, clientFromFlags, dataDirOf, formatOpen, jsonLine } from './chain-options.ts'

/** ~200 bytes a leaf: a file above this is not a pools file */
const MAX_FILE_BYTES = MAX_PUBLISHED_LEAVES * 200

export const withdrawContributionCommand: Command = {
  name: 'rewards withdraw-contribution',
  summary: "withdraw a data contributor's share of the pools a node funded, from its published pools file",
  positionals: 'ACCOUNT',
  options: {
    ...chainOptions,
    pools: {
      type: 'string',
      description: `the published pools file; default <data-dir>/${POOLS_FILE}`,
      valueName: 'FILE'
    }
  },
  async run({ values, positionals }) {
    const who = positionals[0]
    if (positionals.length !== 1 || !who || !isAddress(who, { strict: false }))
      throw new UsageError('give the contributor ACCOUNT (an address) whose leaves to withdraw')
    const file = (values.pools as string | undefined) ?? join(dataDirOf(values), POOLS_FILE)
    let size: number
    try {
      size = statSync(file).size
    } catch {
      throw new UsageError(
        `no pools file at ${file}; give --pools FILE (a node publishes <data-dir>/${POOLS_FILE})`
      )
    }
    if (size > MAX_FILE_BYTES)
      throw new UsageError(`${file} is ${size} bytes; a pools file is at most ${MAX_FILE_BYTES}`)
    let json: unknown
    try {
      json = JSON.parse(readFileSync(file, 'utf8'))
    } catch (err) {
      throw new UsageError(`cannot read ${file}: ${(err as Error).message}`)
    }
    const pools = parsePublishedPools(json)
    // the chain: the usual flags, else the endpoint file beside the pools file's data dir
    const chainValues =
      values.chain || values.rpc ? values : { ...values, chain: join(dataDirOf(values), CHAIN_ENDPOINT_FILE) }
    const client = await clientFromFlags(chainValues, true)
    const r = await withdrawFromPublished(client, pools, getAddress(who))
    if (values.json === true) console.log(jsonLine({ account: getAddress(who), ...r }))
    else
      console.log(
        `withdrew ${formatOpen(r.paid)} to ${getAddress(who)} in ${r.withdrawals} withdrawal(s)${r.mismatched > 0 ? `; ${r.mismatched} pool(s) skipped: the file does not match their on-chain commitment` : ''}`
      )
    return 0
  }
}
