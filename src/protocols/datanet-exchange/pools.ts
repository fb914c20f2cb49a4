// Published contributor pools over the datanet protocol (M1, docs/THREATS.md): a node serves the
// pools file it publishes (<dataDir>/pools.json, src/chain/published-pools.ts) to any peer, a page
// at a time, so a contributor can fetch it from any node that serves it — the node that funded the
// pools or any other holding a copy — and withdraw with no cooperation of the funder. Nothing here
// is trusted: the fetcher checks every page's schema and order, and withdrawFromPublished checks
// each rebuilt tree against the pool's on-chain commitment before it submits a proof.
//
// Wire (on /openlora/datanet/1.0.0, one request per stream, canonical CBOR):
//   { t: 'pools', after: poolId | null } → { t: 'pools', file: { v, chainId, settlement, pools }, more }
//                                         | { t: 'error', code, message }
// `pools` holds the pools with poolId > after, in order, as many as fit MAX_POOLS_FRAME_BYTES;
// `more` says a later page exists (ask again with after = the last poolId).
import { readFile, stat } from 'node:fs/promises'
import type { PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import {
  MAX_PUBLISHED_FILE_BYTES,
  MAX_PUBLISHED_LEAVES,
  type PublishedPools,
  PublishedPoolsSchema,
  parsePublishedPools
} from '../../chain/published-pools.ts'
import { messageOf, parseWith, z } from '../../common/schema.ts'
import { decodeCanonical, encodeCanonical } from '../../crypto/cbor.ts'
import { framed } from '../shared/framed.ts'
import { DATANET_FETCH_TIMEOUT_MS, DATANET_PROTOCOL } from './constants.ts'
import { DatanetFetchError } from './errors.ts'

/**
 * One page: ~80 B a leaf and ~0.7 KB a bound receipt in CBOR, so ~20k receipts of one claim's
 * pool; a larger pool is not served (copy the file). Two pages at most in flight per server.
 */
export const MAX_POOLS_FRAME_BYTES = 16 * 1024 * 1024
/** pages one fetch reads at most (MAX_PUBLISHED_LEAVES bounds the leaves as well) */
export const MAX_POOLS_PAGES = 10_000

const PoolsPageSchema = z.strictObject({
  t: z.literal('pools'),
  file: PublishedPoolsSchema,
  more: z.boolean()
})

/** Reads a pools file (size-bounded, schema-checked); undefined when there is none. */
export async function readPoolsFile(path: string): Promise<PublishedPools | undefined> {
  let size: number
  try {
    size = (await stat(path)).size
  } catch {
    return undefined
  }
  if (size > MAX_PUBLISHED_FILE_BYTES)
    throw new DatanetFetchError(
      'DATANET_NOT_FOUND',
      `the pools file is ${size} bytes, over ${MAX_PUBLISHED_FILE_BYTES}`
    )
  return parsePublishedPools(JSON.parse(await readFile(path, 'utf8')))
}

/** The page after `after` (a poolId, or null for the first) of `file`, as the frame to send. */
export function poolsPage(file: PublishedPools, after: bigint | null): Uint8Array {
  const rest = file.pools.filter((p) => after === null || BigInt(p.poolId) > after)
  const head = { v: file.v, chainId: file.chainId, settlement: file.settlement }
  const page: PublishedPools['pools'] = []
  // CBOR of a pool alone plus the page's envelope: a close upper bound of the frame
  let bytes = encodeCanonical({ t: 'pools', file: { ...head, pools: [] }, more: true }).byteLength + 16
  for (const p of rest) {
    const size = encodeCanonical(p).byteLength
    if (bytes + size > MAX_POOLS_FRAME_BYTES) {
      if (page.length === 0)
        throw new DatanetFetchError(
          'DATANET_NOT_FOUND',
          `pool ${p.poolId} (${p.leaves.length} leaves) is over the ${MAX_POOLS_FRAME_BYTES}-byte frame: copy the pools file instead`
        )
      break
    }
    bytes += size
    page.push(p)
  }
  return encodeCanonical({ t: 'pools', file: { ...head, pools: page }, more: page.length < rest.length })
}

export const PoolsRequestSchema = z.strictObject({
  t: z.literal('pools'),
  after: z
    .string()
    .regex(/^(0|[1-9][0-9]{0,77})$/)
    .nullable()
})

/** The host slice a fetch needs: a stream to a peer (a multiaddr dials it first). */
export interface PoolsDialer {
  dialProtocol(
    peer: PeerId | Multiaddr,
    protocol: string,
    opts?: { signal?: AbortSignal; runOnLimitedConnection?: boolean }
  ): Promise<Stream>
}

/**
 * Fetches the whole pools file a peer serves, page by page, each page schema-checked, pool ids
 * strictly increasing and one chain/Settlement throughout. What it returns is still untrusted:
 * withdrawFromPublished checks each tree against the chain.
 */
export async function fetchPublishedPools(
  host: PoolsDialer,
  peer: PeerId | Multiaddr,
  opts: { signal?: AbortSignal; timeoutMs?: number } = {}
): Promise<PublishedPools> {
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? DATANET_FETCH_TIMEOUT_MS)
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout
  let out: PublishedPools | undefined
  let after: bigint | null = null
  let leaves = 0
  for (let page = 0; page < MAX_POOLS_PAGES; page++) {
    const f = await pageFrom(host, peer, after, signal)
    if (out && (f.file.chainId !== out.chainId || f.file.settlement !== out.settlement))
      throw new DatanetFetchError(
        'DATANET_VERIFY_FAILED',
        'the peer changed chain or Settlement between pages'
      )
    out ??= { ...f.file, pools: [] }
    for (const p of f.file.pools) {
      const id = BigInt(p.poolId)
      if (after !== null && id <= after)
        throw new DatanetFetchError('DATANET_VERIFY_FAILED', `the peer sent pool ${id} out of order`)
      after = id
      leaves += p.leaves.length
      if (leaves > MAX_PUBLISHED_LEAVES)
        throw new DatanetFetchError(
          'DATANET_VERIFY_FAILED',
          `the peer sent more than ${MAX_PUBLISHED_LEAVES} leaves`
        )
      out.pools.push(p)
    }
    if (!f.more) return out
    if (f.file.pools.length === 0)
      throw new DatanetFetchError('DATANET_VERIFY_FAILED', 'the peer said more pools follow but sent none')
  }
  throw new DatanetFetchError('DATANET_VERIFY_FAILED', `the peer sent more than ${MAX_POOLS_PAGES} pages`)
}

async function pageFrom(
  host: PoolsDialer,
  peer: PeerId | Multiaddr,
  after: bigint | null,
  signal: AbortSignal
): Promise<z.output<typeof PoolsPageSchema>> {
  const stream = await host.dialProtocol(peer, DATANET_PROTOCOL, { signal, runOnLimitedConnection: true })
  try {
    const lp = framed(stream, MAX_POOLS_FRAME_BYTES)
    await lp.write(encodeCanonical({ t: 'pools', after: after === null ? null : after.toString() }), {
      signal
    })
    let frame: { t?: unknown; message?: unknown } | null
    try {
      frame = decodeCanonical((await lp.read({ signal })).subarray())
    } catch (err) {
      throw new DatanetFetchError(
        'DATANET_VERIFY_FAILED',
        `the peer sent no pools page: ${(err as Error).message}`
      )
    }
    if (frame?.t === 'error')
      throw new DatanetFetchError(
        (frame as { code?: unknown }).code === 'DATANET_BUSY' ? 'DATANET_BUSY' : 'DATANET_NOT_FOUND',
        `the peer refused: ${String(frame.message).slice(0, 500)}`
      )
    const page = parseWith(PoolsPageSchema, frame, {
      at: 'pools page',
      error: (i) =>
        new DatanetFetchError('DATANET_VERIFY_FAILED', `the peer sent a bad pools page: ${messageOf(i)}`)
    })
    await stream.close({ signal }).catch(() => {})
    return page
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}
