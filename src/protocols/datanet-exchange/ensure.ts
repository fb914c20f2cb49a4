// Fetch-if-missing: training names a datanet by id@version (`openlora train --datanet`, a
// /openlora/train job, a ModelFactory page job), and the trainer may not hold that version yet.
// `ensureDatanet` answers from the local store when it holds it, else copies it over the datanet
// exchange (fetchVersion: every byte checked against trusted roots) from the peers the caller
// names, else from the ones it finds, and says where the roots came from. Roots come from the
// caller or the node's chain; without either a copy is refused unless the caller asks for an
// unverified one (a datanet id hashes only its creation record: without roots the peer decides
// what it contains, and a wrong copy would later block the right one as a fork).
import type { DatanetStore, VersionRecord } from '../../attribution/datanet-store.ts'
import { hasCode } from '../../common/errors.ts'
import type { Hex } from '../../crypto/hash.ts'
import { describeAttempts, type PeerAttempt } from '../shared/try-peers.ts'
import { DatanetFetchError } from './errors.ts'
import type { DatanetFetchProgress } from './exchange.ts'

export interface EnsureDatanetOptions {
  /** peers asked first (a job's requester named the datanet, so it likely holds it) */
  prefer?: readonly string[]
  /** only these peers (the user named them); default: `prefer`, then the ones `candidates` finds */
  from?: readonly string[]
  /** version → root to trust; none: the `roots` dependency (the chain) */
  roots?: Record<number, Hex>
  /** copy without trusted roots: only when the user asked for it */
  unverified?: boolean
  signal?: AbortSignal
  onProgress?: (p: DatanetFetchProgress) => void
}

export interface EnsuredDatanet {
  id: Hex
  version: number
  /** false: the store held it already */
  fetched: boolean
  /** where the trusted roots of a copy came from ('held': nothing was copied) */
  rootsFrom: 'held' | 'request' | 'chain' | 'none'
  /** chunk bytes copied */
  bytes: number
}

export interface EnsureDatanetDeps {
  store: () => DatanetStore | undefined
  /** the exchange's copy (DatanetExchange.fetchVersion) */
  fetch: (
    id: string,
    version: number,
    from: string[],
    opts: {
      trustedRoots: Record<number, Hex>
      unverified: boolean
      signal?: AbortSignal
      onProgress?: (p: DatanetFetchProgress) => void
    }
  ) => Promise<VersionRecord>
  /** peers to ask first (connected peers, the named ones dialled), this node left out */
  candidates: (id: Hex, version: number) => Promise<string[]>
  /**
   * peers asked when those fail (the DHT's providers): a lookup can take seconds, so only when
   * the peers at hand do not have it
   */
  moreCandidates?: (id: Hex, version: number) => Promise<string[]>
  /** trusted roots of versions 1..version (the chain's), undefined when there is no such source */
  roots: (id: Hex, version: number) => Promise<Record<number, Hex> | undefined>
  /** the newest version recorded on-chain, for `ID` without @VERSION; undefined without a chain */
  latest?: (id: Hex) => Promise<number | undefined>
  /** what to do when a copy has no trusted roots (the user's options differ per caller) */
  untrustedHint: string
}

/** The version of `id` the store holds (`version`, or its latest when undefined), else undefined. */
export async function heldVersion(
  store: DatanetStore,
  id: Hex,
  version: number | undefined
): Promise<number | undefined> {
  try {
    const dn = await store.getDatanet(id)
    if (version === undefined) return dn.latestVersion > 0 ? dn.latestVersion : undefined
    await store.getVersion(dn.id, version)
    return version
  } catch (err) {
    if (hasCode(err, 'DATANET_NOT_FOUND', 'VERSION_NOT_FOUND')) return undefined
    throw err
  }
}

/** Returns one ensure function; concurrent calls for the same id@version share one copy. */
export function datanetEnsurer(
  d: EnsureDatanetDeps
): (id: Hex, version: number | undefined, opts?: EnsureDatanetOptions) => Promise<EnsuredDatanet> {
  const inflight = new Map<string, Promise<EnsuredDatanet>>()
  return async (id, version, opts = {}) => {
    const store = d.store()
    if (!store) throw new DatanetFetchError('DATANET_NOT_FOUND', 'this node keeps no datanets')
    const held = await heldVersion(store, id, version)
    if (held !== undefined) return { id, version: held, fetched: false, rootsFrom: 'held', bytes: 0 }
    const v = version ?? (await d.latest?.(id))
    if (v === undefined || v < 1)
      throw new DatanetFetchError(
        'DATANET_NOT_FOUND',
        `datanet ${id} has no published version here and no chain says its latest: publish one, or name the version (ID@VERSION) to fetch it from peers`
      )
    const key = `${id}@${v}`
    const running = inflight.get(key)
    if (running) return running
    const job = copy(d, store, id, v, opts).finally(() => inflight.delete(key))
    inflight.set(key, job)
    return job
  }
}

async function copy(
  d: EnsureDatanetDeps,
  store: DatanetStore,
  id: Hex,
  version: number,
  opts: EnsureDatanetOptions
): Promise<EnsuredDatanet> {
  // held by now: a copy that another caller started and finished between our check and here
  if ((await heldVersion(store, id, version)) !== undefined)
    return { id, version, fetched: false, rootsFrom: 'held', bytes: 0 }
  const trustedRoots: Record<number, Hex> = { ...opts.roots }
  let rootsFrom: EnsuredDatanet['rootsFrom'] = Object.keys(trustedRoots).length > 0 ? 'request' : 'none'
  if (rootsFrom === 'none' && opts.unverified !== true) {
    const chain = await d.roots(id, version)
    if (!chain)
      throw new DatanetFetchError(
        'DATANET_UNTRUSTED',
        `datanet ${id} has no version ${version} here, and there are no trusted roots to check a copy from peers against: ${d.untrustedHint}`
      )
    Object.assign(trustedRoots, chain)
    rootsFrom = 'chain'
  }
  const peers = opts.from
    ? [...opts.from]
    : [...new Set([...(opts.prefer ?? []), ...(await d.candidates(id, version))])]
  let bytes = 0
  const fetchFrom = (from: string[]) =>
    d.fetch(id, version, from, {
      trustedRoots,
      unverified: opts.unverified === true,
      signal: opts.signal,
      onProgress: (p) => {
        bytes = p.received
        opts.onProgress?.(p)
      }
    })
  let v: VersionRecord
  try {
    if (peers.length === 0) throw noPeer(id, version)
    v = await fetchFrom(peers)
  } catch (err) {
    // the peers at hand failed: ask the ones a slower lookup finds, unless the user named them or
    // no other peer could help (a fork is this node's own state; an abort is the caller's)
    if (opts.from || !d.moreCandidates || opts.signal?.aborted || hasCode(err, 'DATANET_FORK')) throw err
    const more = (await d.moreCandidates(id, version).catch(() => [])).filter((p) => !peers.includes(p))
    if (more.length === 0) throw err
    try {
      v = await fetchFrom(more)
    } catch (err2) {
      throw merged(id, version, err, err2)
    }
  }
  return { id, version: v.version, fetched: true, rootsFrom, bytes }
}

const noPeer = (id: Hex, version: number) =>
  new DatanetFetchError(
    'DATANET_NOT_FOUND',
    `datanet ${id} has no version ${version} here and there is no peer to ask for it (no connected peer, and the DHT named no holder)`,
    { id, version, attempts: [] }
  )

/** Both rounds' failures as one error naming every peer asked; a check that failed wins the code. */
function merged(id: Hex, version: number, first: unknown, second: unknown): unknown {
  const attempts = (e: unknown) =>
    e instanceof DatanetFetchError ? ((e.data?.attempts as PeerAttempt[] | undefined) ?? []) : []
  const all = [...attempts(first), ...attempts(second)]
  if (!(second instanceof DatanetFetchError) || all.length === 0) return second
  const code = hasCode(first, 'DATANET_VERIFY_FAILED') ? 'DATANET_VERIFY_FAILED' : second.code
  return new DatanetFetchError(
    code,
    `could not fetch datanet ${id} version ${version} from ${all.length} peer(s): ${describeAttempts(all)}`,
    { id, version, attempts: all }
  )
}
