// Adapter exchange: a node asked for an adapter it lacks fetches the two PEFT files by CID from a
// peer that advertises it, checks them against the CID (manifest hash, then each file's size and
// sha256 as it streams), and stores them in the cold tier. A peer sending wrong bytes is caught
// and the next peer is tried.
//
// Why not Helia bitswap (the first choice): our adapter CID is a dag-cbor manifest that
// names files by sha256, not by CID links, so bitswap could fetch the manifest but not the files
// without re-chunking them into a UnixFS DAG under a second, different CID; its block size limit
// (~2 MiB) is below one adapter file; and Helia keeps its own blockstore beside the AdapterStore's
// cold tier (two copies on disk). The protocol below is ~200 lines on the node's own libp2p host.
//
// Wire: client sends one frame, CBOR `{ cid }`. Server answers a CBOR frame
// `{ t: 'manifest', files: [{ name, size, sha256 }] }` (or `{ t: 'error', code, message }`), then
// each file's bytes in name order as raw length-prefixed frames of at most CHUNK_BYTES, then closes.
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Logger, silentLogger } from '../../common/log.ts'
import { bytesOf, messageOf, parseWith, uint, z } from '../../common/schema.ts'
import { decodeCanonical, encodeCanonical } from '../../crypto/cbor.ts'
import { cidForManifest, cidString } from '../../crypto/cid.ts'
import { bytesEqual, sha256, sha256Stream, toHex } from '../../crypto/hash.ts'
import type { NodeMetrics } from '../../metrics/registry.ts'
import { framed } from '../shared/framed.ts'
import type { PeerScores } from '../shared/peer-score.ts'
import type { ProtocolHost } from '../shared/protocol-host.ts'
import { StreamGuard, type StreamLimits } from '../shared/stream-guard.ts'
import { describeAttempts, tryPeers } from '../shared/try-peers.ts'
import {
  ADAPTER_FILE_NAMES,
  ADAPTER_PROTOCOL,
  ADAPTER_SERVE_LIMITS,
  CHUNK_BYTES,
  DEFAULT_MAX_ADAPTER_BYTES,
  FETCH_BUFFER_BYTES,
  FETCH_TIMEOUT_MS,
  MAX_ADAPTER_REQUEST_BYTES,
  MAX_MANIFEST_FRAME_BYTES
} from './constants.ts'
import { AdapterFetchError } from './errors.ts'

export type AdapterFileName = (typeof ADAPTER_FILE_NAMES)[number]
export type AdapterFileSet = Record<AdapterFileName, Uint8Array>

/** Where served adapters come from (the AdapterStore fits: `files(cid)` throws when absent). */
export interface AdapterSource {
  files(cid: string): Promise<AdapterFileSet>
}

/**
 * Where fetched adapters go (the AdapterStore fits: checks the CID again and stores cold). `model`
 * is the base model the adapter was fetched for: a node serving several keeps one store each.
 */
export interface AdapterSink {
  importFiles(
    files: AdapterFileSet,
    opts: { expectedCid: string; model?: string }
  ): Promise<{ cid: string; added: boolean }>
}

/** The libp2p host slice this service needs. */
export type AdapterExchangeHost = ProtocolHost

export interface AdapterExchangeComponents {
  host: AdapterExchangeHost
  source?: AdapterSource
  sink?: AdapterSink
  logger?: Logger
  /** the node's peer scores (shared with the other protocols and the connection gater) */
  scores?: PeerScores
  /** the node's registry: fetches by CID and their bytes (docs/METRICS.md) */
  metrics?: NodeMetrics
}

/** How far a fetch from one peer is: bytes of the adapter received so far of its total. */
export interface FetchProgress {
  cid: string
  peer: string
  received: number
  total: number
}

export interface AdapterExchangeInit {
  maxAdapterBytes?: number
  fetchTimeoutMs?: number
  /** serving limits per peer and node-wide (ADAPTER_SERVE_LIMITS) */
  limits?: Partial<StreamLimits>
}

const manifestEntry = (name: AdapterFileName) =>
  z.object({ name: z.literal(name), size: uint(), sha256: bytesOf(32) })

/** What a peer asks for: one adapter by CID. */
const AdapterRequestSchema = z.strictObject({ cid: cidString(128) })

// The answer's first frame: the two PEFT files in order, each with its size and sha256 (the
// bytes that follow are checked against them), or the peer's refusal.
const ManifestFrameSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('error'), code: z.unknown().optional(), message: z.unknown() }),
  z.object({
    t: z.literal('manifest'),
    files: z.tuple([manifestEntry(ADAPTER_FILE_NAMES[0]), manifestEntry(ADAPTER_FILE_NAMES[1])])
  })
])

interface ManifestEntry {
  name: AdapterFileName
  size: number
  sha256: Uint8Array
}

function parseManifestFrame(raw: unknown, maxBytes: number): ManifestEntry[] {
  const f = parseWith(ManifestFrameSchema, raw, {
    at: 'manifest',
    error: (i) =>
      new AdapterFetchError('ADAPTER_VERIFY_FAILED', `manifest frame is malformed: ${messageOf(i)}`)
  })
  if (f.t === 'error')
    throw new AdapterFetchError(
      'ADAPTER_NOT_FOUND',
      f.code === 'RATE_LIMITED' || f.code === 'BUSY'
        ? `peer refused (${f.code}): ${String(f.message).slice(0, 200)}`
        : `peer has no such adapter: ${String(f.message).slice(0, 200)}`
    )
  const files = f.files as unknown as ManifestEntry[]
  if (files.reduce((n, e) => n + e.size, 0) > maxBytes)
    throw new AdapterFetchError(
      'ADAPTER_VERIFY_FAILED',
      `adapter is larger than this node's limit of ${maxBytes} bytes`
    )
  return files
}

export class AdapterExchange {
  readonly #c: AdapterExchangeComponents
  readonly #maxBytes: number
  readonly #timeoutMs: number
  readonly #log: Logger
  readonly #inflight = new Map<string, Promise<void>>()
  readonly #guard: StreamGuard
  #started = false

  constructor(components: AdapterExchangeComponents, init: AdapterExchangeInit = {}) {
    this.#c = components
    this.#guard = new StreamGuard({ ...ADAPTER_SERVE_LIMITS, ...init.limits }, components.scores)
    this.#maxBytes = init.maxAdapterBytes ?? DEFAULT_MAX_ADAPTER_BYTES
    this.#timeoutMs = init.fetchTimeoutMs ?? FETCH_TIMEOUT_MS
    this.#log = components.logger ?? silentLogger
  }

  async start(): Promise<void> {
    if (this.#started || !this.#c.source) return
    await this.#c.host.handle(ADAPTER_PROTOCOL, (s, c) => this.#serve(s, c), {
      maxInboundStreams: 8,
      maxOutboundStreams: 8,
      runOnLimitedConnection: true
    })
    this.#started = true
  }

  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#c.host.unhandle(ADAPTER_PROTOCOL)
  }

  async #serve(stream: Stream, connection: Connection): Promise<void> {
    const admitted = this.#guard.admit(stream, connection)
    if (admitted === 'banned') return
    const lp = framed(stream, MAX_ADAPTER_REQUEST_BYTES)
    const signal = AbortSignal.timeout(this.#timeoutMs)
    let cid = ''
    try {
      if (typeof admitted !== 'function') {
        // refused before the request is read: the client reads this as its answer
        await lp.write(
          encodeCanonical({
            t: 'error',
            code: admitted.code,
            message: admitted.message,
            retryAfterMs: admitted.retryAfterMs
          }),
          { signal }
        )
        await stream.close({ signal })
        return
      }
      let req: z.output<typeof AdapterRequestSchema>
      try {
        req = parseWith(AdapterRequestSchema, decodeCanonical((await lp.read({ signal })).subarray()), {
          at: 'request'
        })
      } catch (err) {
        this.#guard.invalid(connection, err)
        throw err
      }
      cid = req.cid
      let files: AdapterFileSet
      try {
        files = await this.#c.source!.files(cid)
      } catch (err) {
        await lp.write(
          encodeCanonical({ t: 'error', code: 'ADAPTER_NOT_FOUND', message: (err as Error).message }),
          { signal }
        )
        await stream.close({ signal })
        return
      }
      const manifest = ADAPTER_FILE_NAMES.map((name) => ({
        name,
        size: files[name].length,
        sha256: sha256(files[name])
      }))
      await lp.write(encodeCanonical({ t: 'manifest', files: manifest }), { signal })
      for (const name of ADAPTER_FILE_NAMES) {
        const data = files[name]
        for (let off = 0; off < data.length; off += CHUNK_BYTES)
          await lp.write(data.subarray(off, off + CHUNK_BYTES), { signal })
      }
      await stream.close({ signal })
      this.#log.debug('adapter served', { cid, peer: connection.remotePeer.toString() })
    } catch (err) {
      this.#log.debug('adapter request failed', { cid, peer: connection.remotePeer.toString(), err })
      stream.abort(err as Error)
    } finally {
      if (typeof admitted === 'function') admitted()
    }
  }

  /**
   * Fetches `cid` from the first of `from` that sends bytes matching it, into the store of
   * `model` (the sink's default without one); one fetch per model and CID at a time.
   */
  fetch(
    cid: string,
    from: string[],
    opts: { signal?: AbortSignal; model?: string; onProgress?: (p: FetchProgress) => void } = {}
  ): Promise<void> {
    const key = `${opts.model ?? ''}\n${cid}`
    const running = this.#inflight.get(key)
    if (running) return running
    const m = this.#c.metrics
    const p = this.#fetchAny(cid, from, opts.signal, opts.model, opts.onProgress)
      .then(
        () => m?.adapterFetches.inc({ adapter: m.adapterLabel.of(cid), outcome: 'success' }),
        (err) => {
          m?.adapterFetches.inc({ adapter: m.adapterLabel.of(cid), outcome: 'failure' })
          throw err
        }
      )
      .finally(() => this.#inflight.delete(key))
    this.#inflight.set(key, p)
    return p
  }

  async #fetchAny(
    cid: string,
    from: string[],
    signal?: AbortSignal,
    model?: string,
    onProgress?: (p: FetchProgress) => void
  ): Promise<void> {
    if (!this.#c.sink)
      throw new AdapterFetchError('ADAPTER_NOT_FOUND', 'this node has no adapter store to fetch into')
    const sink = this.#c.sink
    await tryPeers(
      from,
      async (peer) => {
        const files = await this.fetchFrom(cid, peer, signal, onProgress)
        await sink.importFiles(files, { expectedCid: cid, ...(model === undefined ? {} : { model }) })
        this.#log.info('adapter fetched', { cid, peer, model })
      },
      (attempts) => {
        // a peer whose bytes failed the CID's checks (manifest, sizes, hashes) lied, which is not
        // the same as a peer that lacks the adapter
        const verify = attempts.some(
          (a) => a.code === 'ADAPTER_VERIFY_FAILED' || a.code === 'ADAPTER_CID_MISMATCH'
        )
        return new AdapterFetchError(
          verify ? 'ADAPTER_VERIFY_FAILED' : 'ADAPTER_NOT_FOUND',
          `could not fetch adapter ${cid} from ${from.length} peer(s): ${describeAttempts(attempts)}`,
          { cid, attempts }
        )
      },
      {
        signal,
        onFailure: (peer, err) => {
          // bytes that failed the CID's checks: the peer lied (a missing adapter is no offence)
          const code = (err as { code?: string }).code
          if (code === 'ADAPTER_VERIFY_FAILED' || code === 'ADAPTER_CID_MISMATCH') this.#guard.lied(peer)
          this.#log.warn('adapter fetch from peer failed', { cid, peer, err })
        }
      }
    )
  }

  /** Downloads and verifies the adapter's files from one peer; stores nothing. */
  async fetchFrom(
    cid: string,
    peer: string,
    signal?: AbortSignal,
    onProgress?: (p: FetchProgress) => void
  ): Promise<AdapterFileSet> {
    const timeout = AbortSignal.timeout(this.#timeoutMs)
    const sig = signal ? AbortSignal.any([signal, timeout]) : timeout
    const stream = await this.#c.host.dialProtocol(peerIdFromString(peer), ADAPTER_PROTOCOL, {
      signal: sig,
      runOnLimitedConnection: true
    })
    try {
      const lp = framed(stream, Math.max(CHUNK_BYTES, MAX_MANIFEST_FRAME_BYTES), FETCH_BUFFER_BYTES)
      await lp.write(encodeCanonical({ cid }), { signal: sig })
      const manifestBytes = (await lp.read({ signal: sig })).subarray()
      if (manifestBytes.length > MAX_MANIFEST_FRAME_BYTES)
        throw new AdapterFetchError('ADAPTER_VERIFY_FAILED', 'manifest frame is oversized')
      const manifest = parseManifestFrame(decodeCanonical(manifestBytes), this.#maxBytes)
      // The manifest must hash to the CID before a single file byte is accepted.
      const got = cidForManifest({ v: 1, kind: 'peft-adapter', files: manifest })
      if (got !== cid)
        throw new AdapterFetchError(
          'ADAPTER_VERIFY_FAILED',
          `manifest hashes to ${got}, which does not match ${cid}`
        )
      const files = {} as AdapterFileSet
      const total = manifest.reduce((n, e) => n + e.size, 0)
      let received = 0
      onProgress?.({ cid, peer, received, total })
      for (const entry of manifest) {
        const buf = new Uint8Array(entry.size)
        const h = sha256Stream()
        let off = 0
        while (off < entry.size) {
          const chunk = (await lp.read({ signal: sig })).subarray()
          if (off + chunk.length > entry.size)
            throw new AdapterFetchError(
              'ADAPTER_VERIFY_FAILED',
              `${entry.name}: peer sent more bytes than the manifest size`
            )
          buf.set(chunk, off)
          h.update(chunk)
          off += chunk.length
          received += chunk.length
          this.#c.metrics?.adapterFetchBytes.inc(chunk.length)
          onProgress?.({ cid, peer, received, total })
        }
        const digest = h.digest()
        if (!bytesEqual(digest, entry.sha256))
          throw new AdapterFetchError(
            'ADAPTER_VERIFY_FAILED',
            `${entry.name}: sha256 ${toHex(digest)} does not match the manifest's ${toHex(entry.sha256)}`
          )
        files[entry.name] = buf
      }
      await stream.close({ signal: sig }).catch(() => {})
      return files
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }
}
