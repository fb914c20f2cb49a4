// How the datanet exchange joins the node (src/node/extensions.ts): a `datanetExchange` service
// on the node's libp2p host, serving and fetching into the attribution service's DatanetStore,
// and the admin action `POST /datanets/fetch` that `openlora datanet fetch` uses.

import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { datanetRegistryAbi } from '../../chain/artifacts/index.ts'
import type { ChainClient } from '../../chain/client.ts'
import { POOLS_FILE } from '../../chain/extension.ts'
import type { PublishedPools } from '../../chain/published-pools.ts'
import { OpenLoraError } from '../../common/errors.ts'
import { messageOf, parseWith, z } from '../../common/schema.ts'
import type { NodeComponents, NodeExtension } from '../../common/service.ts'
import type { Hex } from '../../crypto/hash.ts'
import { datanetVersionKey } from '../routing/dht.ts'
import { peerIdsOf } from '../shared/peer-list.ts'
import { datanetEnsurer, type EnsureDatanetOptions, type EnsuredDatanet } from './ensure.ts'
import { DatanetExchange, DatanetFetchError } from './exchange.ts'
import { readPoolsFile } from './pools.ts'
import { DatanetReplicator } from './replicator.ts'

/** The node config's `exchange.datanet` section as the exchange's init (sizes in bytes). */
function datanetExchangeInit(config: NodeComponents['config']) {
  const { maxBundleMb, fetchTimeoutMs, maxConcurrentExports, ...limits } = config.exchange.datanet
  return { maxBundleBytes: maxBundleMb * 2 ** 20, fetchTimeoutMs, maxConcurrentExports, limits }
}

const ZERO_ROOT = `0x${'00'.repeat(32)}`

/** The node's chain client once its chain service runs; undefined without one. */
function chainOf(components: NodeComponents): ChainClient | undefined {
  try {
    return components.services.chain?.client
  } catch {
    return undefined // the chain service is configured but not started
  }
}

/** How many versions of `id` the DatanetRegistry records (undefined: no chain, or not there). */
async function latestOnChain(components: NodeComponents, id: Hex): Promise<number | undefined> {
  const client = chainOf(components)
  if (!client || !(await client.datanetExists(id))) return undefined
  const d = (await client.publicClient.readContract({
    address: client.addresses.datanetRegistry,
    abi: datanetRegistryAbi,
    functionName: 'getDatanet',
    args: [id]
  })) as { versions: number | bigint }
  return Number(d.versions) || undefined
}

/** Connected peers first (no lookup), at most 16; never this node. */
function connectedPeers(components: NodeComponents): string[] {
  const self = components.identity.peerId.toString()
  return components.libp2p
    .getPeers()
    .map((p) => p.toString())
    .filter((p) => p !== self)
    .slice(0, 16)
}

/**
 * The DatanetRegistry's roots for versions 1..version, when the node has a chain: the trusted
 * roots a fetch needs. Undefined without a started chain service; a version missing on-chain is
 * an error naming it.
 */
async function rootsOnChain(
  components: NodeComponents,
  id: Hex,
  version: number
): Promise<Record<number, Hex> | undefined> {
  const client = chainOf(components)
  if (!client) return undefined
  const roots: Record<number, Hex> = {}
  for (let v = 1; v <= version; v++) {
    let root: Hex
    try {
      root = await client.datanetVersionRoot(id, v)
    } catch (err) {
      const revert = (err as { revert?: string }).revert
      // the registry's own answers for a datanet or version it does not hold; anything else is
      // the chain not answering, which says nothing about what to trust
      if (revert !== 'UnknownVersion' && revert !== 'UnknownDatanet')
        throw new DatanetFetchError(
          'DATANET_UNTRUSTED',
          `could not read datanet roots from chain ${client.chainId}: ${(err as Error).message}`
        )
      root = ZERO_ROOT as Hex
    }
    if (root.toLowerCase() === ZERO_ROOT)
      throw new DatanetFetchError(
        'DATANET_UNTRUSTED',
        `datanet ${id} version ${v} is not recorded in the DatanetRegistry of chain ${client.chainId}: nothing to trust`
      )
    roots[v] = root.toLowerCase() as Hex
  }
  return roots
}

class DatanetFetchRequestError extends OpenLoraError<'BAD_REQUEST'> {}
const bad = (message: string) => new DatanetFetchRequestError('BAD_REQUEST', message)
const HEX32 = /^0x[0-9a-f]{64}$/

/** The body of POST /datanets/fetch (what `openlora datanet fetch` sends). */
const FetchBodySchema = z.strictObject({
  id: z.string().regex(HEX32).describe('a datanet id (0x + 64 lowercase hex)') as unknown as z.ZodType<
    Hex,
    string
  >,
  version: z.int().min(1).max(0xffffffff),
  /** peers to copy from (peer ids or multiaddrs); absent or empty: the DHT's providers */
  from: z.array(z.string().max(512)).max(16).optional(),
  /** version → root to trust (e.g. read from the registry by the caller) */
  roots: z
    .record(
      z.string().regex(/^\d+$/).describe('a version number'),
      z
        .string()
        .regex(/^0x[0-9a-fA-F]{64}$/)
        .describe('a root (0x + 64 hex)')
    )
    .optional(),
  unverified: z.boolean().optional()
})

/** Holders of a datanet version according to the DHT (src/node/providers.ts provides them). */
async function providersOf(
  components: NodeComponents,
  id: string,
  version: number,
  timeoutMs = 10_000
): Promise<string[]> {
  const out: string[] = []
  try {
    const key = await datanetVersionKey(id, version)
    for await (const p of components.libp2p.contentRouting.findProviders(key, {
      signal: AbortSignal.timeout(timeoutMs)
    })) {
      if (p.id.equals(components.identity.peerId)) continue
      out.push(p.id.toString())
      if (out.length >= 8) break
    }
  } catch (err) {
    if (out.length === 0)
      throw new DatanetFetchError(
        'DATANET_NOT_FOUND',
        `no peer named and the DHT found no holder of datanet ${id} version ${version}: ${(err as Error).message}`
      )
  }
  if (out.length === 0)
    throw new DatanetFetchError(
      'DATANET_NOT_FOUND',
      `no peer named and the DHT found no holder of datanet ${id} version ${version}`
    )
  return out
}

/**
 * The node's datanet exchange, with `replicator` for copies the attribution service asks for and
 * `ensure` for training (ensure.ts): the version from the store, else copied from peers (the ones
 * named, else `prefer`, the DHT's providers and connected peers) with roots from the caller or
 * the node's chain.
 */
export type DatanetExchangeService = DatanetExchange & {
  replicator: DatanetReplicator
  ensure(id: Hex, version: number | undefined, opts?: EnsureDatanetOptions): Promise<EnsuredDatanet>
}

declare module '../../common/service.ts' {
  interface Services {
    datanetExchange: DatanetExchangeService
  }
}

function datanetExchangeService(components: NodeComponents): DatanetExchangeService {
  const attribution = () => components.services.attribution
  const log = components.logger.child('datanet-exchange')
  const poolsFile = join(components.dataDir.path, POOLS_FILE)
  // parsed once per version of the file (the chain service rewrites it after each funding claim)
  let cached: { mtimeMs: number; size: number; file: Promise<PublishedPools | undefined> } | undefined
  const pools = async (): Promise<PublishedPools | undefined> => {
    const st = await stat(poolsFile).catch(() => undefined)
    if (!st) return undefined
    if (cached?.mtimeMs !== st.mtimeMs || cached.size !== st.size)
      cached = {
        mtimeMs: st.mtimeMs,
        size: st.size,
        file: readPoolsFile(poolsFile).catch((err) => {
          log.warn('the pools file cannot be served', { file: poolsFile, err })
          return undefined
        })
      }
    return cached.file
  }
  const exchange = new DatanetExchange(
    {
      host: components.libp2p,
      store: () => attribution()?.store,
      pools,
      scores: components.peerScores,
      logger: log
    },
    datanetExchangeInit(components.config)
  )
  components.admin.action('/datanets/fetch', async (body, ctx) => {
    const b = parseWith(FetchBodySchema, body, { at: 'body', error: (i) => bad(messageOf(i)) })
    const roots: Record<number, Hex> = {}
    for (const [v, r] of Object.entries(b.roots ?? {})) roots[Number(v)] = r.toLowerCase() as Hex
    // no roots given: the node's own chain, when it has one, says what to trust
    let rootsFrom: 'request' | 'chain' | 'none' = Object.keys(roots).length > 0 ? 'request' : 'none'
    if (rootsFrom === 'none' && b.unverified !== true) {
      const onChain = await rootsOnChain(components, b.id, b.version)
      if (onChain) {
        Object.assign(roots, onChain)
        rootsFrom = 'chain'
      }
    }
    // no peers named: the DHT's provider records for that version say who holds it
    const from =
      b.from === undefined || (Array.isArray(b.from) && b.from.length === 0)
        ? await providersOf(components, b.id, b.version)
        : await peerIdsOf(components.libp2p, b.from, {
            bad,
            // a typed refusal (the caller named a peer that does not answer), not a node failure
            unreachable: (m) => new DatanetFetchError('DATANET_NOT_FOUND', m)
          })
    // the CLI's progress bar: chunk bytes of the peer now copying (streamed to the caller)
    let bytes = 0
    const v = await exchange.fetchVersion(b.id, b.version, from, {
      trustedRoots: roots,
      unverified: b.unverified === true,
      onProgress: (p) => {
        bytes = p.received
        ctx.progress({ ...p })
      }
    })
    return {
      id: v.datanetId,
      version: v.version,
      root: v.root,
      contributions: v.count,
      trustedRoots: Object.keys(roots).length,
      rootsFrom,
      bytes
    }
  })
  const replicator = new DatanetReplicator({
    exchange,
    peers: () => components.libp2p.getPeers().map((p) => p.toString()),
    roots: (id, version) => rootsOnChain(components, id, version),
    logger: components.logger.child('datanet-replicator')
  })
  const ensure = datanetEnsurer({
    store: () => attribution()?.store,
    fetch: (id, version, from, opts) => exchange.fetchVersion(id, version, from, opts),
    candidates: async () => connectedPeers(components),
    // the DHT's holders when no connected peer has it (a lookup can take its whole timeout)
    moreCandidates: (id, version) => providersOf(components, id, version, 5_000),
    roots: (id, version) => rootsOnChain(components, id, version),
    latest: (id) => latestOnChain(components, id),
    untrustedHint:
      'this node has no chain to read them from; give roots, or copy it by hand first with `openlora datanet fetch ID@V --from PEER --root V=ROOT` (or --unverified)'
  })
  // background copies end before the node closes its store and releases its data dir
  const stopExchange = exchange.stop.bind(exchange)
  return Object.assign(exchange, {
    replicator,
    ensure,
    stop: async () => {
      await replicator.stop()
      await stopExchange()
    }
  })
}

export const datanetExchangeExtension: NodeExtension = {
  name: 'datanet-exchange',
  services: () => ({ datanetExchange: datanetExchangeService })
}
