// `openlora rewards withdraw-contribution ACCOUNT`: pays a data contributor its leaves in the
// contributor pools a node funded, from the node's published pools file (M1, docs/THREATS.md), read
// from disk (--pools) or fetched over the datanet protocol from any node that serves it
// (--from-peer MULTIADDR): no cooperation of the funding node needed. Each tree is rebuilt from the file and checked
// against the pool's on-chain commitment before its proof is submitted; anyone may submit (the
// key pays the gas), the tokens go to ACCOUNT.
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { getAddress, isAddress } from 'viem'
import { CHAIN_ENDPOINT_FILE, POOLS_FILE } from '../../../chain/extension.ts'
import {
  MAX_PUBLISHED_FILE_BYTES,
  type PublishedPools,
  parsePublishedPools,
  withdrawFromPublished
} from '../../../chain/published-pools.ts'
import { createClientHost } from '../../../client/host.ts'
import { z } from '../../../common/schema.ts'
import { fetchPublishedPools } from '../../../protocols/datanet-exchange/pools.ts'
import { checkPoolBinding, poolsBoundTo } from '../../../protocols/infer/pool-binding.ts'
import { receiptDigest, verifyReceipt } from '../../../protocols/infer/receipt.ts'
import type { Command } from '../../cli/command.ts'
import { UsageError } from '../../cli/command.ts'
import { readJsonInput } from '../../cli/json-input.ts'
import { chainOptions, clientFromFlags, dataDirOf, formatOpen, jsonLine } from './chain-options.ts'

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
    },
    'from-peer': {
      type: 'string',
      description: 'fetch the pools file from this node instead (a multiaddr ending in /p2p/ID)',
      valueName: 'MULTIADDR'
    }
  },
  async run({ values, positionals }) {
    const who = positionals[0]
    if (positionals.length !== 1 || !who || !isAddress(who, { strict: false }))
      throw new UsageError('give the contributor ACCOUNT (an address) whose leaves to withdraw')
    const fromPeer = values['from-peer'] as string | undefined
    if (fromPeer !== undefined && values.pools !== undefined)
      throw new UsageError('give --pools FILE or --from-peer MULTIADDR, not both')
    const pools = fromPeer !== undefined ? await poolsFromPeer(fromPeer) : readPoolsArg(values)
    // the chain: the usual flags, else the endpoint file beside the pools file's data dir
    const chainValues =
      values.chain || values.rpc ? values : { ...values, chain: join(dataDirOf(values), CHAIN_ENDPOINT_FILE) }
    const client = await clientFromFlags(chainValues, true)
    // H5: each pool of this account re-derived from the receipts its tree is bound to; a pool that
    // does not follow from them is reported (its leaves are still what the chain pays)
    const unbound: { poolId: string; reason: string }[] = []
    for (const p of pools.pools) {
      if (!p.leaves.some((l) => l.account === getAddress(who))) continue
      const c = await checkPoolBinding(p)
      if (!c.ok) unbound.push({ poolId: p.poolId, reason: c.reason })
    }
    const r = await withdrawFromPublished(client, pools, getAddress(who))
    if (values.json === true) console.log(jsonLine({ account: getAddress(who), ...r, unbound }))
    else {
      console.log(
        `withdrew ${formatOpen(r.paid)} to ${getAddress(who)} in ${r.withdrawals} withdrawal(s)${r.mismatched > 0 ? `; ${r.mismatched} pool(s) skipped: the file does not match their on-chain commitment` : ''}`
      )
      for (const u of unbound) console.log(`warning: ${u.reason}`)
    }
    return 0
  }
}

/** `openlora rewards check-receipt FILE`: the client's side of H5 (docs/THREATS.md). */
export const checkReceiptCommand: Command = {
  name: 'rewards check-receipt',
  summary:
    'find the published contributor pool a receipt funded and check the pool follows from its receipts',
  positionals: 'RECEIPT_FILE',
  options: {
    'data-dir': chainOptions['data-dir']!,
    json: chainOptions.json!,
    pools: {
      type: 'string',
      description: `the published pools file; default <data-dir>/${POOLS_FILE}`,
      valueName: 'FILE'
    },
    'from-peer': {
      type: 'string',
      description: 'fetch the pools file from this node instead (a multiaddr ending in /p2p/ID)',
      valueName: 'MULTIADDR'
    }
  },
  async run({ values, positionals }) {
    const file = positionals[0]
    if (!file || positionals.length !== 1)
      throw new UsageError('give the RECEIPT_FILE (a receipt as the node sent it)')
    const receipt = await readJsonInput(file, z.unknown(), {
      what: 'receipt file',
      maxBytes: 4 * 1024 * 1024
    })
    const v = await verifyReceipt(receipt)
    if (!v.ok) throw new UsageError(`${file} is not a valid receipt: ${v.check}: ${v.field}: ${v.message}`)
    const fromPeer = values['from-peer'] as string | undefined
    if (fromPeer !== undefined && values.pools !== undefined)
      throw new UsageError('give --pools FILE or --from-peer MULTIADDR, not both')
    const pools = fromPeer !== undefined ? await poolsFromPeer(fromPeer) : readPoolsArg(values)
    const digest = receiptDigest(v.receipt.body, v.receipt.eip712)
    const found = []
    for (const id of poolsBoundTo(pools, digest)) {
      const c = await checkPoolBinding(pools.pools.find((p) => p.poolId === id)!)
      found.push({ poolId: id, ok: c.ok, ...(c.ok ? {} : { reason: c.reason }) })
    }
    const ok = found.length > 0 && found.every((f) => f.ok)
    if (values.json === true) console.log(jsonLine({ digest, pools: found, ok }))
    else if (found.length === 0)
      console.log(
        `receipt ${digest} is in no published pool: not claimed yet, or claimed with another attribution than the one this receipt carries`
      )
    else
      for (const f of found)
        console.log(
          f.ok
            ? `pool ${f.poolId}: follows from its receipts, this one included`
            : `pool ${f.poolId}: ${f.reason}`
        )
    return ok ? 0 : 1
  }
}

function readPoolsArg(values: Record<string, string | boolean | string[] | undefined>): PublishedPools {
  const file = (values.pools as string | undefined) ?? join(dataDirOf(values), POOLS_FILE)
  let size: number
  try {
    size = statSync(file).size
  } catch {
    throw new UsageError(
      `no pools file at ${file}; give --pools FILE (a node publishes <data-dir>/${POOLS_FILE}) or --from-peer MULTIADDR`
    )
  }
  if (size > MAX_PUBLISHED_FILE_BYTES)
    throw new UsageError(`${file} is ${size} bytes; a pools file is at most ${MAX_PUBLISHED_FILE_BYTES}`)
  let json: unknown
  try {
    json = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`)
  }
  return parsePublishedPools(json)
}

/** Fetches the pools file a node serves (each page size-limited and schema-checked). */
async function poolsFromPeer(target: string): Promise<PublishedPools> {
  let ma: Multiaddr
  try {
    ma = multiaddr(target)
  } catch (err) {
    throw new UsageError(`--from-peer ${target} is not a multiaddr: ${(err as Error).message}`)
  }
  if (ma.getComponents().every((c) => c.name !== 'p2p'))
    throw new UsageError(`--from-peer ${target} must end in /p2p/PEER_ID`)
  const host = await createClientHost({ holePunch: false })
  try {
    return await fetchPublishedPools(host.node, ma)
  } finally {
    await host.stop()
  }
}
