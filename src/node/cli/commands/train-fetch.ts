// `openlora train --datanet ID[@V]` on a datanet the data dir may not hold: "the datanet's
// records, fetched from peers if missing" (issue 21).
// - The data dir's node runs (it holds the LevelDB lock): the node makes sure it holds the version
//   (copied from --from peers, else the DHT's holders and its connected peers, trusting --root,
//   --chain, or else its own chain) and hands over the rows (admin POST /training/datanet).
// - No node runs: the command opens the store itself and, when the version is missing, copies it
//   over the datanet exchange with a short-lived dial-only host from --from peers, else the
//   config's network.bootstrap peers and the DHT holders they know, trusting --root, the chain of
//   --chain/--rpc, or nothing with --unverified.
// Either way the copy shows the datanet fetch's progress (chunk bytes, rate, ETA).
import { multiaddr } from '@multiformats/multiaddr'
import type { DatanetStore } from '../../../attribution/datanet-store.ts'
import { createClientHost } from '../../../client/host.ts'
import type { Hex } from '../../../crypto/hash.ts'
import { datanetEnsurer, type EnsuredDatanet } from '../../../protocols/datanet-exchange/ensure.ts'
import { DatanetFetchError } from '../../../protocols/datanet-exchange/errors.ts'
import { DatanetExchange } from '../../../protocols/datanet-exchange/exchange.ts'
import { datanetVersionKey } from '../../../protocols/routing/dht.ts'
import { datanetRows } from '../../../protocols/training/datanet-data.ts'
import type { DatanetSource } from '../../../runtime/training/record.ts'
import { adminRequest } from '../../admin.ts'
import type { NodeConfig } from '../../config/schema.ts'
import { DataDirLockedError } from '../../errors.ts'
import { UsageError } from '../command.ts'
import { withFetchProgress } from '../progress.ts'
import { clientFromFlags } from './chain-options.ts'
import { datanetOnChain, rootsFromChain } from './datanet-chain.ts'
import { openDatanetStore } from './datanet-shared.ts'

export interface DatanetFetchFlags {
  /** --from: peers holding it (multiaddrs with /p2p/ID; peer ids too when a node runs) */
  from: string[]
  /** --root VERSION=ROOT */
  roots: Record<number, Hex>
  unverified: boolean
  /** the command's values (--chain / --rpc for roots read from the chain) */
  values: Record<string, unknown>
  json: boolean
}

export interface DatanetTrainingRows {
  rows: { text: string }[]
  source: DatanetSource
  /** what was copied to get them (fetched false: held already) */
  ensured: Omit<EnsuredDatanet, 'id'>
}

const DIAL_TIMEOUT_MS = 10_000
const DHT_TIMEOUT_MS = 5_000
const UNTRUSTED_HINT =
  'give --root V=ROOT for each version 1..V, --chain FILE (roots from the DatanetRegistry), or --unverified to copy without them'

const chainGiven = (values: Record<string, unknown>) =>
  typeof values.chain === 'string' || typeof values.rpc === 'string'

/** The roots of versions 1..version recorded on the chain of --chain/--rpc (all, or an error naming the first missing). */
async function chainRoots(values: Record<string, unknown>, id: Hex, version: number) {
  const client = await clientFromFlags(values as never, false)
  const wanted = Array.from({ length: version }, (_, i) => ({ id, version: i + 1 }))
  const roots: Record<number, Hex> = {}
  for (const r of await rootsFromChain(client, wanted)) roots[r.version] = r.root
  for (let v = 1; v <= version; v++)
    if (roots[v] === undefined)
      throw new DatanetFetchError(
        'DATANET_UNTRUSTED',
        `datanet ${id} version ${v} is not recorded in the DatanetRegistry of chain ${client.chainId}: nothing to trust`
      )
  return roots
}

/** The rows of `id`@`version` (latest when undefined) for training, fetched from peers if missing. */
export async function datanetForTraining(
  config: NodeConfig,
  id: Hex,
  version: number | undefined,
  flags: DatanetFetchFlags
): Promise<DatanetTrainingRows> {
  let opened: Awaited<ReturnType<typeof openDatanetStore>>
  try {
    opened = await openDatanetStore(config)
  } catch (err) {
    if (err instanceof DataDirLockedError) return throughNode(config, id, version, flags)
    throw err
  }
  let host: Awaited<ReturnType<typeof createClientHost>> | undefined
  try {
    const store = opened.store
    const hostOnce = async () => (host ??= await createClientHost())
    const ensure = datanetEnsurer({
      store: () => store,
      fetch: async (i, v, from, o) =>
        new DatanetExchange({ host: (await hostOnce()).node, store: () => store }).fetchVersion(
          i,
          v,
          from,
          o
        ),
      candidates: async (i, v) => candidates(await hostOnce(), config, flags.from, i, v),
      moreCandidates: async (i, v) => dhtHolders(await hostOnce(), i, v),
      roots: async (i, v) => (chainGiven(flags.values) ? chainRoots(flags.values, i, v) : undefined),
      latest: async (i) =>
        chainGiven(flags.values)
          ? (await datanetOnChain(await clientFromFlags(flags.values as never, false), i))?.versions
          : undefined,
      untrustedHint: UNTRUSTED_HINT
    })
    const e = await withFetchProgress(label(id, version), { json: flags.json }, (onProgress) =>
      ensure(id, version, {
        roots: flags.roots,
        unverified: flags.unverified,
        onProgress: (p) => onProgress({ ...p })
      })
    )
    return { ...(await datanetRows(store as DatanetStore, id, e.version)), ensured: e }
  } finally {
    await host?.stop()
    await opened.close()
  }
}

const label = (id: string, version: number | undefined) =>
  `datanet ${id.slice(0, 10)}…${version === undefined ? '' : `@${version}`}`

/**
 * Peers to copy from with the short-lived host: each of --from (else network.bootstrap) dialled
 * (the DHT's holders are asked through them if none has it). Unreachable ones are named when none
 * answers.
 */
async function candidates(
  host: Awaited<ReturnType<typeof createClientHost>>,
  config: NodeConfig,
  from: string[],
  id: Hex,
  version: number
): Promise<string[]> {
  const addrs = from.length > 0 ? from : config.network.bootstrap
  if (addrs.length === 0)
    throw new DatanetFetchError(
      'DATANET_NOT_FOUND',
      `datanet ${id}@${version} is not in ${config.dataDir} and no peer is named to fetch it from: give --from ADDR (a multiaddr ending in /p2p/PEER_ID) or set network.bootstrap`
    )
  const out: string[] = []
  const failed: string[] = []
  for (const a of addrs) {
    try {
      const conn = await host.node.dial(multiaddr(a), { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
      out.push(conn.remotePeer.toString())
    } catch (err) {
      failed.push(`${a}: ${(err as Error).message}`)
    }
  }
  if (out.length === 0)
    throw new DatanetFetchError(
      'DATANET_NOT_FOUND',
      `datanet ${id}@${version} is not in ${config.dataDir} and no peer could be reached to fetch it: ${failed.join('; ')}`
    )
  return out
}

/** Holders of the version the DHT names through the connected peers (none when it cannot say). */
async function dhtHolders(
  host: Awaited<ReturnType<typeof createClientHost>>,
  id: Hex,
  version: number
): Promise<string[]> {
  const out: string[] = []
  try {
    const key = await datanetVersionKey(id, version)
    for await (const p of host.node.contentRouting.findProviders(key, {
      signal: AbortSignal.timeout(DHT_TIMEOUT_MS)
    }))
      if (!out.includes(p.id.toString())) out.push(p.id.toString())
  } catch {
    // a second source only: the named peers' answers stand
  }
  return out
}

/** The data dir's node runs: it fetches (if missing) and reads the rows (admin POST /training/datanet). */
async function throughNode(
  config: NodeConfig,
  id: Hex,
  version: number | undefined,
  flags: DatanetFetchFlags
): Promise<DatanetTrainingRows> {
  let roots = flags.roots
  if (Object.keys(roots).length === 0 && chainGiven(flags.values)) {
    if (version === undefined)
      throw new UsageError('--chain/--rpc roots need the version: give --datanet ID@VERSION')
    roots = await chainRoots(flags.values, id, version)
  }
  const res = await withFetchProgress(label(id, version), { json: flags.json }, (onProgress) =>
    adminRequest<{
      rows: { text: string }[]
      source: DatanetSource
      fetched: boolean
      rootsFrom: EnsuredDatanet['rootsFrom']
      bytes: number
    }>(
      config.dataDir,
      '/training/datanet',
      600_000,
      {
        id,
        ...(version === undefined ? {} : { version }),
        ...(flags.from.length > 0 ? { from: flags.from } : {}),
        roots,
        unverified: flags.unverified
      },
      onProgress
    )
  )
  return {
    rows: res.rows,
    source: res.source,
    ensured: { version: res.source.version, fetched: res.fetched, rootsFrom: res.rootsFrom, bytes: res.bytes }
  }
}
