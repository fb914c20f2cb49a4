// Datanet exchange: a node copies a published datanet version from a peer, so it can attribute
// jobs whose adapters were trained on it (the span index is built from the local copy). The
// bundle (attribution/replicate.ts: record, every version's root and count, each contribution's
// CID, contributor and chunk manifest) is checked in full — datanet id, every CID and leaf,
// every root, and the trusted roots (e.g. on-chain) where given — before a chunk is asked for;
// each chunk is checked against its sha256 before it is stored; the import then re-checks and
// appends. A peer sending anything else is named in the error and the next peer is tried.
//
// Wire (length-prefixed canonical CBOR, one request per stream):
//   { t: 'bundle', id, version }  →  { t: 'bundle', bundle } | { t: 'error', code, message }
//   { t: 'chunks', refs: [{ size, sha256 }] }  →  one { t: 'chunk', bytes } per ref, in order
//                                                 | { t: 'error', code, message }
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { DatanetStore, VersionRecord } from '../../attribution/datanet-store.ts'
import {
  checkVersionBundle,
  exportVersion,
  importVersion,
  type VersionBundle
} from '../../attribution/replicate.ts'
import type { ChunkRef } from '../../attribution/types.ts'
import type { PublishedPools } from '../../chain/published-pools.ts'
import { hasCode } from '../../common/errors.ts'
import { type Logger, silentLogger } from '../../common/log.ts'
import { messageOf, parseWith, uint, z } from '../../common/schema.ts'
import { decodeCanonical, encodeCanonical } from '../../crypto/cbor.ts'
import type { Hex } from '../../crypto/hash.ts'
import { framed } from '../shared/framed.ts'
import type { PeerScores } from '../shared/peer-score.ts'
import type { ProtocolHost } from '../shared/protocol-host.ts'
import { StreamGuard, type StreamLimits } from '../shared/stream-guard.ts'
import { describeAttempts, tryPeers } from '../shared/try-peers.ts'
import {
  DATANET_FETCH_TIMEOUT_MS,
  DATANET_PROTOCOL,
  DATANET_SERVE_LIMITS,
  MAX_BUNDLE_FRAME_BYTES,
  MAX_BUSY_RETRIES,
  MAX_BUSY_WAIT_MS,
  MAX_CHUNK_FRAME_BYTES,
  MAX_CHUNKS_PER_REQUEST,
  MAX_CONCURRENT_EXPORTS,
  MAX_DATANET_REQUEST_BYTES
} from './constants.ts'

import { DatanetFetchError, type DatanetFetchErrorCode } from './errors.ts'
import { PoolsRequestSchema, poolsPage } from './pools.ts'

export { DatanetFetchError, type DatanetFetchErrorCode }

/** The libp2p host slice this service needs. */
export type DatanetExchangeHost = ProtocolHost

export interface DatanetExchangeComponents {
  host: DatanetExchangeHost
  /** looked up per call: the attribution service may start after this one */
  store: () => DatanetStore | undefined
  /** the contributor pools this node publishes (M1), served to any peer that asks */
  pools?: () => Promise<PublishedPools | undefined>
  logger?: Logger
  /** the node's peer scores (shared with the other protocols and the connection gater) */
  scores?: PeerScores
}

/**
 * How far a copy from one peer is: bytes of the chunks this node lacked (the contribution text)
 * received and stored so far, of their total (known once the bundle has checked out).
 */
export interface DatanetFetchProgress {
  id: string
  version: number
  peer: string
  received: number
  total: number
}

const HEX32 = /^0x[0-9a-f]{64}$/
/** Error codes meaning a peer's bytes failed a check (bundle, root, chunk hash). */
const VERIFY_CODES = new Set(['DATANET_VERIFY_FAILED', 'DATANET_INVALID', 'CHUNK_MISMATCH'])
/** Bundle exports at once, node-wide: each reads a datanet's records and encodes them. */

const hex32 = z.string().regex(HEX32).describe('0x + 64 lowercase hex') as unknown as z.ZodType<Hex, string>

/** What a peer asks for (the first and only frame it sends on a stream). */
export const DatanetRequestSchema = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal('bundle'), id: hex32, version: uint() }),
  z.strictObject({
    t: z.literal('chunks'),
    refs: z
      .array(z.strictObject({ size: z.int().min(1).max(Number.MAX_SAFE_INTEGER), sha256: hex32 }))
      .min(1)
      .max(MAX_CHUNKS_PER_REQUEST)
  }),
  PoolsRequestSchema
])
type DatanetRequest = z.output<typeof DatanetRequestSchema>

// Answers: the bundle is checked in full by checkVersionBundle (attribution/replicate.ts), so the
// frame schema only says it is a bundle; a chunk is checked against its ref's sha256 when stored.
const BundleFrameSchema = z.object({
  t: z.literal('bundle'),
  bundle: z.looseObject({ datanet: z.looseObject({}), versions: z.array(z.unknown()) })
})
const ChunkFrameSchema = z.object({ t: z.literal('chunk'), bytes: z.instanceof(Uint8Array) })

function parseRequest(raw: unknown): DatanetRequest {
  return parseWith(DatanetRequestSchema, raw, { at: 'request' })
}

/** A peer's answer frame by schema; a mismatch is the peer's fault (DATANET_VERIFY_FAILED). */
function answer<S extends z.ZodType>(schema: S, frame: unknown, what: string): z.output<S> {
  return parseWith(schema, frame, {
    at: 'frame',
    error: (i) =>
      new DatanetFetchError('DATANET_VERIFY_FAILED', `the peer did not send ${what}: ${messageOf(i)}`)
  })
}

export class DatanetExchange {
  readonly #c: DatanetExchangeComponents
  readonly #log: Logger
  readonly #timeoutMs: number
  readonly #guard: StreamGuard
  readonly #maxBundleBytes: number
  readonly #maxExports: number
  #started = false
  #exporting = 0

  constructor(
    components: DatanetExchangeComponents,
    init: {
      fetchTimeoutMs?: number
      limits?: Partial<StreamLimits>
      /** largest bundle frame sent or accepted (MAX_BUNDLE_FRAME_BYTES) */
      maxBundleBytes?: number
      /** bundle exports at once (MAX_CONCURRENT_EXPORTS) */
      maxConcurrentExports?: number
    } = {}
  ) {
    this.#c = components
    this.#maxBundleBytes = init.maxBundleBytes ?? MAX_BUNDLE_FRAME_BYTES
    this.#maxExports = init.maxConcurrentExports ?? MAX_CONCURRENT_EXPORTS
    this.#guard = new StreamGuard({ ...DATANET_SERVE_LIMITS, ...init.limits }, components.scores)
    this.#log = components.logger ?? silentLogger
    this.#timeoutMs = init.fetchTimeoutMs ?? DATANET_FETCH_TIMEOUT_MS
  }

  async start(): Promise<void> {
    if (this.#started) return
    await this.#c.host.handle(DATANET_PROTOCOL, (s, c) => this.#serve(s, c), {
      maxInboundStreams: 8,
      maxOutboundStreams: 8,
      runOnLimitedConnection: true
    })
    this.#started = true
  }

  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#c.host.unhandle(DATANET_PROTOCOL)
  }

  async #serve(stream: Stream, connection: Connection): Promise<void> {
    const admitted = this.#guard.admit(stream, connection)
    if (admitted === 'banned') return
    // the read limit is the request's: answers are written, never read, on this side
    const lp = framed(stream, MAX_DATANET_REQUEST_BYTES)
    const signal = AbortSignal.timeout(this.#timeoutMs)
    const refuse = async (code: string, message: string, retryAfterMs?: number) => {
      await lp.write(
        encodeCanonical({
          t: 'error',
          code,
          message,
          ...(retryAfterMs === undefined ? {} : { retryAfterMs })
        }),
        { signal }
      )
      await stream.close({ signal })
    }
    try {
      // over a limit: refused before the request is read, with when to come back
      if (typeof admitted !== 'function')
        return await refuse(admitted.code, admitted.message, admitted.retryAfterMs)
      let req: DatanetRequest
      try {
        req = parseRequest(decodeCanonical((await lp.read({ signal })).subarray()))
      } catch (err) {
        this.#guard.invalid(connection, err)
        throw err
      }
      if (req.t === 'pools') {
        // pages share the bundle exports' slots: each holds up to a 16 MiB frame until it is read
        if (this.#exporting >= this.#maxExports)
          return await refuse('DATANET_BUSY', `${this.#maxExports} exports are running; try again`, 1000)
        this.#exporting++
        try {
          const file = await this.#c.pools?.()
          if (!file) return await refuse('DATANET_NOT_FOUND', 'this node publishes no contributor pools')
          let frame: Uint8Array
          try {
            frame = poolsPage(file, req.after === null ? null : BigInt(req.after))
          } catch (err) {
            return await refuse('DATANET_NOT_FOUND', (err as Error).message)
          }
          await lp.write(frame, { signal })
        } finally {
          this.#exporting--
        }
        return await stream.close({ signal })
      }
      const store = this.#c.store()
      if (!store) return await refuse('DATANET_NOT_FOUND', 'this node keeps no datanets')
      if (req.t === 'bundle') {
        if (this.#exporting >= this.#maxExports)
          return await refuse(
            'DATANET_BUSY',
            `${this.#maxExports} bundle exports are running; try again`,
            1000
          )
        // the slot is held until the frame is written: a peer that does not read keeps it (and
        // the frame's memory) until the timeout, and no more than MAX_CONCURRENT_EXPORTS of those
        this.#exporting++
        try {
          let frame: Uint8Array
          try {
            frame = encodeCanonical({ t: 'bundle', bundle: await exportVersion(store, req.id, req.version) })
          } catch (err) {
            return await refuse('DATANET_NOT_FOUND', (err as Error).message)
          }
          if (frame.byteLength > this.#maxBundleBytes)
            return await refuse(
              'DATANET_NOT_FOUND',
              `the bundle is ${frame.byteLength} bytes, over the ${this.#maxBundleBytes}-byte frame limit (exchange.datanet.maxBundleMb)`
            )
          await lp.write(frame, { signal })
        } finally {
          this.#exporting--
        }
      } else {
        // read all first, so a missing chunk is one error frame, not a stream cut short
        const chunks: Uint8Array[] = []
        for (const ref of req.refs) {
          try {
            chunks.push(await store.readChunk(ref))
          } catch (err) {
            return await refuse('DATANET_NOT_FOUND', (err as Error).message)
          }
        }
        for (const bytes of chunks) await lp.write(encodeCanonical({ t: 'chunk', bytes }), { signal })
      }
      await stream.close({ signal })
    } catch (err) {
      this.#log.debug('datanet request refused', { peer: connection.remotePeer.toString(), err })
      stream.abort(err as Error)
    } finally {
      if (typeof admitted === 'function') admitted()
    }
  }

  /**
   * Copies version `version` (and the versions before it) of datanet `id` from the first of
   * `from` (peer ids) that sends a bundle and chunks that check out, into the local store.
   * `trustedRoots` (version → root, e.g. read from the DatanetRegistry) must match where given
   * and must include `version` unless `unverified`: a datanet id hashes only its creation record,
   * so without a trusted root any peer could fill it with other contributions (and the real ones
   * would then be refused as a fork).
   */
  async fetchVersion(
    id: string,
    version: number,
    from: string[],
    opts: {
      trustedRoots?: Record<number, Hex>
      unverified?: boolean
      signal?: AbortSignal
      onProgress?: (p: DatanetFetchProgress) => void
    } = {}
  ): Promise<VersionRecord> {
    const store = this.#c.store()
    if (!store) throw new DatanetFetchError('DATANET_NOT_FOUND', 'this node keeps no datanets')
    // a root for the last version pins the contributions, but each earlier version's count (so
    // its root) would still be the peer's choice: every version stored needs its trusted root
    const untrusted = Array.from({ length: version }, (_, i) => i + 1).filter(
      (v) => opts.trustedRoots?.[v] === undefined
    )
    if (untrusted.length > 0 && opts.unverified !== true)
      throw new DatanetFetchError(
        'DATANET_UNTRUSTED',
        `no trusted root for version${untrusted.length > 1 ? 's' : ''} ${untrusted.join(', ')} of 1..${version}: give them (e.g. from the DatanetRegistry), or fetch unverified on purpose`
      )
    return tryPeers(
      from,
      async (peer) => {
        const bundle = await this.#bundleFrom(peer, id, version, opts.signal)
        if (bundle.datanet?.id !== id)
          throw new DatanetFetchError(
            'DATANET_VERIFY_FAILED',
            `the peer sent datanet ${bundle.datanet?.id}, not ${id}`
          )
        if (bundle.versions?.length !== version)
          throw new DatanetFetchError(
            'DATANET_VERIFY_FAILED',
            `the peer sent ${bundle.versions?.length} versions, not 1..${version}`
          )
        const checked = checkVersionBundle(bundle, opts.trustedRoots)
        const fetched = await this.#chunksFrom(
          peer,
          store,
          checked.records.flatMap((r) => r.chunks),
          opts.signal,
          opts.onProgress && ((received, total) => opts.onProgress!({ id, version, peer, received, total }))
        )
        // every chunk is in the store now; importVersion checks the bundle again and appends
        const v = await importVersion(
          store,
          bundle,
          async (ref) => {
            throw new DatanetFetchError('DATANET_VERIFY_FAILED', `chunk ${ref.sha256} was not sent`)
          },
          opts.trustedRoots
        )
        this.#log.info('datanet version fetched', { id, version, peer, chunks: fetched })
        return v
      },
      (attempts) => {
        // a peer that sent something failing a check, else one that was busy, else none had it
        const code: DatanetFetchErrorCode = attempts.some(
          (a) => a.code !== undefined && VERIFY_CODES.has(a.code)
        )
          ? 'DATANET_VERIFY_FAILED'
          : attempts.some((a) => a.code === 'DATANET_BUSY')
            ? 'DATANET_BUSY'
            : 'DATANET_NOT_FOUND'
        return new DatanetFetchError(
          code,
          `could not fetch datanet ${id} version ${version} from ${from.length} peer(s): ${describeAttempts(attempts)}`,
          { id, version, attempts }
        )
      },
      {
        signal: opts.signal,
        // a differing local history is this node's state, not the peer's doing: no other peer
        // with the same trusted roots could help
        fatal: (err) => hasCode(err, 'DATANET_FORK'),
        onFailure: (peer, err) => this.#log.warn('datanet fetch from peer failed', { id, version, peer, err })
      }
    )
  }

  /** #once, waiting out a busy or rate-limited answer (its retry hint) up to MAX_BUSY_RETRIES times. */
  async #request<T>(...args: Parameters<DatanetExchange['once']>): Promise<T> {
    for (let tries = 0; ; tries++) {
      try {
        return (await this.once(...args)) as T
      } catch (err) {
        const wait = (err as DatanetFetchError).data?.retryAfterMs
        if (!hasCode(err, 'DATANET_BUSY') || typeof wait !== 'number' || tries >= MAX_BUSY_RETRIES) throw err
        await new Promise((r) => setTimeout(r, wait))
        args[4]?.throwIfAborted()
      }
    }
  }

  /** One request on one stream (public for #request's types; not part of the API). */
  async once<T>(
    peer: string,
    request: unknown,
    maxFrame: number,
    maxBuffer: number,
    signal: AbortSignal | undefined,
    read: (next: () => Promise<unknown>) => Promise<T>
  ): Promise<T> {
    const timeout = AbortSignal.timeout(this.#timeoutMs)
    const sig = signal ? AbortSignal.any([signal, timeout]) : timeout
    const stream = await this.#c.host.dialProtocol(peerIdFromString(peer), DATANET_PROTOCOL, {
      signal: sig,
      runOnLimitedConnection: true
    })
    try {
      const lp = framed(stream, maxFrame, maxBuffer)
      await lp.write(encodeCanonical(request), { signal: sig })
      const next = async () => {
        const data = (await lp.read({ signal: sig })).subarray()
        let frame: { t?: unknown; code?: unknown; message?: unknown; retryAfterMs?: unknown } | null
        try {
          frame = decodeCanonical(data)
        } catch (err) {
          throw new DatanetFetchError(
            'DATANET_VERIFY_FAILED',
            `the peer sent a frame that is not canonical CBOR: ${(err as Error).message}`
          )
        }
        if (frame?.t === 'error') {
          const busy = frame.code === 'DATANET_BUSY' || frame.code === 'RATE_LIMITED' || frame.code === 'BUSY'
          const retry = Number(frame.retryAfterMs)
          throw new DatanetFetchError(
            busy ? 'DATANET_BUSY' : 'DATANET_NOT_FOUND',
            `the peer refused: ${String(frame.message).slice(0, 500)}`,
            busy && Number.isFinite(retry) && retry >= 0
              ? { retryAfterMs: Math.min(retry, MAX_BUSY_WAIT_MS) }
              : {}
          )
        }
        return frame
      }
      const out = await read(next)
      await stream.close({ signal: sig }).catch(() => {})
      return out
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }

  #bundleFrom(peer: string, id: string, version: number, signal?: AbortSignal): Promise<VersionBundle> {
    const request = { t: 'bundle', id, version }
    return this.#request(
      peer,
      request,
      this.#maxBundleBytes,
      this.#maxBundleBytes + 16,
      signal,
      async (next) => {
        const f = answer(BundleFrameSchema, await next(), 'a bundle { datanet, versions, contributions }')
        return f.bundle as unknown as VersionBundle
      }
    )
  }

  /** Fetches the chunks of `refs` this node lacks, MAX_CHUNKS_PER_REQUEST per request, each checked and stored; returns how many. */
  async #chunksFrom(
    peer: string,
    store: DatanetStore,
    refs: ChunkRef[],
    signal?: AbortSignal,
    onProgress?: (received: number, total: number) => void
  ): Promise<number> {
    const missing: ChunkRef[] = []
    const seen = new Set<string>()
    for (const ref of refs) {
      if (seen.has(ref.sha256)) continue
      seen.add(ref.sha256)
      try {
        await store.readChunk(ref)
      } catch {
        missing.push(ref)
      }
    }
    const total = missing.reduce((n, r) => n + r.size, 0)
    let received = 0
    onProgress?.(received, total)
    for (let i = 0; i < missing.length; i += MAX_CHUNKS_PER_REQUEST) {
      const batch = missing.slice(i, i + MAX_CHUNKS_PER_REQUEST)
      // the peer writes the whole batch at once: buffer all of it while each chunk is stored
      const buffer = batch.length * (MAX_CHUNK_FRAME_BYTES + 16)
      await this.#request(
        peer,
        { t: 'chunks', refs: batch },
        MAX_CHUNK_FRAME_BYTES,
        buffer,
        signal,
        async (next) => {
          for (const ref of batch) {
            const f = answer(ChunkFrameSchema, await next(), 'a chunk')
            // putChunk checks size and sha256 before anything is written
            await store.putChunk(f.bytes, ref)
            received += ref.size
            onProgress?.(received, total)
          }
        }
      )
    }
    return missing.length
  }
}
