// The programmatic client of /openlora/infer/1.0.0, used by `openlora infer` and the tests: it
// signs a request with the client's peer key, streams tokens as they arrive and checks the
// receipt against what it saw itself (job id, serving peer, model, adapter, token hashes).
import { randomBytes } from 'node:crypto'
import type { Stream } from '@libp2p/interface'
import { type Logger, silentLogger } from '../common/log.ts'
import { type Hex, toHex } from '../crypto/hash.ts'
import {
  type AcceptedFrame,
  type AcceptedTerms,
  type ChatMessage,
  encodeFrame,
  type ProgressFrame,
  type RequestBody,
  type RequestFrame,
  type ResponseFrame,
  requestSigningBytes,
  type TokenFrame,
  type WireGenerationParams
} from '../protocols/infer/codec.ts'
import {
  INFER_PROTOCOL,
  MAX_RESPONSE_FRAME_BYTES,
  UNREACHABLE_RETRY_MS
} from '../protocols/infer/constants.ts'
import { InferError, inferErrorFromFrame, ProtocolError } from '../protocols/infer/errors.ts'
import type { Receipt, ReceiptVerification } from '../protocols/infer/receipt.ts'
import { verifyReceipt } from '../protocols/infer/receipt.ts'
import { readResponses } from '../protocols/infer/stream.ts'
import { framed } from '../protocols/shared/framed.ts'
import { FrameQueue } from './frame-queue.ts'
import type { JobPayer } from './payer.ts'

export interface InferClientComponents {
  /** this client's peer id (base58btc), the key that signs its requests */
  peerId: string
  privateKey: { sign(data: Uint8Array): Uint8Array | Promise<Uint8Array> }
  /** opens a stream to a multiaddr string or a peer id string */
  dial(
    target: string,
    protocol: string,
    opts: { signal?: AbortSignal; negotiateFully?: boolean; runOnLimitedConnection?: boolean }
  ): Promise<Stream>
  /** which kind of connection carries a stream this client opened (client/host.ts knows) */
  connectionOf?(stream: Stream): ConnectionKind | undefined
  logger?: Logger
  /** pays for jobs on nodes that charge (src/client/payer.ts); without it only free jobs run */
  payer?: JobPayer
  /**
   * The node this client runs on (its gateway): jobs whose target is `peerId` itself go to it in
   * process (libp2p cannot dial itself), with the same frames, checks and payment as a dial.
   */
  local?: LocalJobs
}

/** What the infer service offers to a client in the same process (InferService.submit). */
export interface LocalJobs {
  submit(
    frame: RequestFrame,
    opts: { send(frame: ResponseFrame): void | Promise<void>; signal: AbortSignal }
  ): Promise<void>
}

/** One job's response frames, from a stream or in process; `data` is absent in process. */
interface FrameSource {
  requestBytes: number
  connection?: ConnectionKind
  frames: AsyncIterable<{ frame: ResponseFrame; data?: Uint8Array }>
  close(): Promise<void>
  abort(err: Error): void
}

/** A stream rides a direct connection, or a relayed (limited) one through a circuit relay. */
export type ConnectionKind = 'direct' | 'relayed'

export interface InferInput {
  model: string
  adapter?: string | null
  prompt?: string
  promptIds?: number[]
  messages?: ChatMessage[]
  params: WireGenerationParams
  /** how long the network may take for the whole job; default 120 s */
  timeoutMs?: number
  /**
   * A payment voucher in its wire form `{ client, node, adapterId, cumulativeAmount, signature }`
   * (src/chain/wallet.ts VoucherWallet makes one); its `node` decides which operator may serve.
   */
  voucher?: Record<string, unknown> | null
  /** the terms the voucher accepted (H4): signed with the request, the node serves only its own */
  terms?: AcceptedTerms
  jobId?: Hex
}

export interface InferOptions {
  signal?: AbortSignal
  onAccepted?(frame: AcceptedFrame): void
  onToken?(frame: TokenFrame): void
  onProgress?(frame: ProgressFrame): void
  /**
   * Check the receipt against what this client saw (default true). Off only where the caller
   * checks it elsewhere: a benchmark of the network path, or a verifier running in batches.
   * 'remote': check every receipt except those this client's own node signed in process (the
   * gateway trusts its own node; secp256k1 recovery costs ~9 ms per receipt).
   */
  verify?: boolean | 'remote'
}

export interface InferResult {
  jobId: Hex
  /** the peer that ran the job (the last `accepted` frame; the receipt names it too) */
  servedBy: string
  route: string[]
  tokens: TokenFrame[]
  outputIds: number[]
  text: string
  finishReason: 'stop' | 'length' | 'abort'
  promptIds: number[]
  usage: { promptTokens: number; outputTokens: number }
  timings: { queuedMs: number; firstTokenMs: number; totalMs: number }
  receipt: Receipt
  /**
   * the full attribution proof when the node sent one (span attribution that fit the frame);
   * verification checks it hashes to the receipt's proofHash. Check it against published roots
   * with verifyAttribution (src/attribution) or `openlora datanet verify-proof`.
   */
  attributionProof?: unknown
  /** the receipt checked against what this client saw; null when `verify: false` */
  verification: ReceiptVerification | null
  /** the connection the job ran on, when the dialer could tell */
  connection?: ConnectionKind
  /** bytes of frames received, by kind (what the job cost on the wire) */
  wireBytes: { request: number; tokens: number; other: number }
}

const RESIGNABLE = new Set(['VOUCHER_MISSING', 'UNDERPAID', 'WRONG_CHANNEL', 'TERMS_MISMATCH'])

export function newJobId(): Hex {
  return toHex(randomBytes(16))
}

export class InferClient {
  readonly #c: InferClientComponents
  readonly #log: Logger

  constructor(components: InferClientComponents) {
    this.#c = components
    this.#log = components.logger ?? silentLogger
  }

  get peerId(): string {
    return this.#c.peerId
  }

  async buildRequest(input: InferInput): Promise<RequestFrame> {
    const body: RequestBody = {
      v: 1,
      jobId: input.jobId ?? newJobId(),
      model: input.model,
      adapter: input.adapter ?? null,
      params: input.params,
      deadline: Date.now() + (input.timeoutMs ?? 120_000),
      client: this.#c.peerId,
      voucher: input.voucher ?? null,
      ...(input.terms !== undefined ? { terms: input.terms } : {}),
      ...(input.prompt !== undefined ? { prompt: input.prompt } : {}),
      ...(input.promptIds !== undefined ? { promptIds: input.promptIds } : {}),
      ...(input.messages !== undefined ? { messages: input.messages } : {})
    }
    // Sign exactly what goes on the wire (absent optionals dropped).
    const wire = JSON.parse(JSON.stringify(body)) as RequestBody
    return {
      t: 'request',
      body: wire,
      signature: await this.#c.privateKey.sign(requestSigningBytes(wire)),
      route: []
    }
  }

  /**
   * Runs one job through `target` (a multiaddr or peer id string). Throws InferError or ProtocolError.
   * With a payer, a PAYMENT_REQUIRED answer that carries the node's terms is paid and the job
   * resent (at most twice: unknown terms, then an exact worst case); a paid receipt is settled
   * in the payer's wallet once it verified.
   */
  async infer(target: string, input: InferInput, opts: InferOptions = {}): Promise<InferResult> {
    const payer = this.#c.payer
    if (!payer || input.voucher !== undefined) return this.#run(target, input, opts)
    let voucher = await payer.voucherFor(target, input)
    for (let attempt = 0; ; attempt++) {
      let started = false
      const watched: InferOptions = {
        ...opts,
        onAccepted: (f) => {
          started = true
          opts.onAccepted?.(f)
        }
      }
      // the node signs its terms for this job id: a resend is a new job, so a new id
      const jobId = attempt === 0 ? (input.jobId ?? newJobId()) : newJobId()
      try {
        const terms = voucher ? payer.termsOf(voucher) : undefined
        const r = await this.#run(target, { ...input, voucher, jobId, ...(terms ? { terms } : {}) }, watched)
        if (voucher) {
          let receipt: Receipt | undefined
          if (r.verification?.ok !== false) {
            const mismatch = payer.receiptMismatch(voucher, r.receipt)
            if (r.receipt.body.voucher !== payer.hashOf(voucher))
              r.verification = {
                ok: false,
                check: 'expected',
                field: 'body.voucher',
                message: 'the receipt names another voucher than the one this job paid with'
              }
            else if (mismatch) r.verification = { ok: false, check: 'expected', ...mismatch }
            else receipt = r.receipt
          }
          await payer.ended(voucher, receipt ? { receipt, started } : { started })
        }
        return r
      } catch (err) {
        if (voucher) await payer.ended(voucher, { started })
        const terms = err instanceof InferError && err.code === 'PAYMENT_REQUIRED' ? err.payment : undefined
        // Resend only where a new voucher can help: none sent, too small, or another operator serves.
        if (!terms || attempt >= 2 || !RESIGNABLE.has(terms.reason)) throw err
        this.#log.debug('paying for the job', { target, operator: terms.operator, max: terms.maxAmountDue })
        voucher = await payer.voucherForTerms(target, input, terms, jobId)
      }
    }
  }

  async #run(target: string, input: InferInput, opts: InferOptions): Promise<InferResult> {
    const req = await this.buildRequest(input)
    const { jobId } = req.body
    const timeout = AbortSignal.timeout((input.timeoutMs ?? 120_000) + 5_000)
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout
    const source = await this.#open(target, req, signal)
    const onAbort = () => source.abort(new Error('cancelled by the client'))
    const connection = source.connection
    signal.addEventListener('abort', onAbort, { once: true })
    const tokens: TokenFrame[] = []
    const wireBytes = { request: source.requestBytes, tokens: 0, other: 0 }
    let accepted: AcceptedFrame | undefined
    try {
      for await (const { frame: f, data } of source.frames) {
        const size = data?.length ?? 0
        if (f.t === 'token') wireBytes.tokens += size
        else wireBytes.other += size
        switch (f.t) {
          case 'accepted':
            accepted = f
            opts.onAccepted?.(f)
            break
          case 'token':
            // Tokens arrive in order and never beyond what was asked for: a node that sends more
            // would grow this list (and the caller's text) until the timeout.
            if (f.index !== tokens.length)
              throw new ProtocolError(`token frame ${f.index} arrived where ${tokens.length} was due`)
            if (tokens.length >= input.params.maxNewTokens)
              throw new ProtocolError(
                `the serving node sent more than the ${input.params.maxNewTokens} tokens asked for (maxNewTokens)`
              )
            tokens.push(f)
            opts.onToken?.(f)
            break
          case 'progress':
            opts.onProgress?.(f)
            break
          case 'error':
            // a precise code riding in the message (PEER_UNREACHABLE) comes back as the code
            throw inferErrorFromFrame(f)
          case 'result': {
            if (f.jobId !== jobId) throw new ProtocolError(`result is for job ${f.jobId}, not ${jobId}`)
            const outputIds = tokens.map((t) => t.id)
            const verification: ReceiptVerification | null =
              opts.verify === false ||
              (opts.verify === 'remote' &&
                this.#c.local !== undefined &&
                target === this.#c.peerId &&
                accepted?.servedBy === this.#c.peerId &&
                f.receipt.body.peerId === this.#c.peerId)
                ? null
                : await verifyReceipt(f.receipt, {
                    jobId,
                    peerId: accepted?.servedBy,
                    modelId: input.model,
                    adapter: input.adapter ?? null,
                    promptIds: input.promptIds ?? f.promptIds,
                    outputIds,
                    attributionProof: f.attributionProof
                  })
            await source.close().catch(() => {})
            this.#log.debug('job done', { jobId, servedBy: f.receipt.body.peerId, ok: verification?.ok })
            return {
              jobId,
              servedBy: f.receipt.body.peerId,
              route: accepted?.route ?? [],
              tokens,
              outputIds,
              text: f.text,
              finishReason: f.finishReason,
              promptIds: f.promptIds,
              usage: f.usage,
              timings: f.timings,
              receipt: f.receipt,
              ...(f.attributionProof === undefined ? {} : { attributionProof: f.attributionProof }),
              verification,
              ...(connection ? { connection } : {}),
              wireBytes
            }
          }
        }
      }
      throw new ProtocolError('stream ended without a result or error frame')
    } catch (err) {
      source.abort(err as Error)
      if (err instanceof InferError || err instanceof ProtocolError) throw err
      if (signal.aborted)
        throw new InferError(
          'DEADLINE_EXCEEDED',
          opts.signal?.aborted ? 'cancelled by the caller' : 'job timed out'
        )
      // A relay resets a relayed connection at its data or time limit (network.relay on the relay):
      // say so, so a limit never reads as an unexplained failure.
      const why =
        connection === 'relayed'
          ? ' (over a relayed connection: the relay may have ended it at its data or time limit)'
          : ''
      throw new InferError('INTERNAL', `connection lost${why}: ${(err as Error).message}`, {}, { cause: err })
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }

  /** Sends the request: in process to this client's own node, else over a new libp2p stream. */
  async #open(target: string, req: RequestFrame, signal: AbortSignal): Promise<FrameSource> {
    const local = this.#c.local
    if (local && target === this.#c.peerId) {
      const queue = new FrameQueue()
      const ac = new AbortController()
      const done = local.submit(req, {
        send: (f) => queue.push(f),
        signal: AbortSignal.any([signal, ac.signal])
      })
      void done.finally(() => queue.end())
      return {
        requestBytes: 0,
        frames: queue,
        close: async () => {},
        // the job answers a cancel with its error frame, which ends the frames
        abort: (err) => ac.abort(err)
      }
    }
    // The protocol id rides with the request frame: one round trip less per job.
    let stream: Stream
    try {
      stream = await this.#c.dial(target, INFER_PROTOCOL, {
        signal,
        negotiateFully: false,
        // a node behind NAT answers over a relayed connection
        runOnLimitedConnection: true
      })
    } catch (err) {
      if (signal.aborted) throw new InferError('DEADLINE_EXCEEDED', 'cancelled or timed out while dialling')
      // No stream, so the request never left: the entry did not see the job and charged nothing.
      throw new InferError(
        'PEER_UNREACHABLE',
        `could not dial ${target} (${(err as Error)?.message ?? String(err)}): the job was not sent, ` +
          'so it was not charged; retry, or send it to another entry peer',
        { peer: target, peers: [target], retryAfterMs: UNREACHABLE_RETRY_MS },
        { cause: err }
      )
    }
    const connection = this.#c.connectionOf?.(stream)
    const lp = framed(stream, MAX_RESPONSE_FRAME_BYTES)
    const bytes = encodeFrame(req)
    try {
      await lp.write(bytes, { signal })
    } catch (err) {
      stream.abort(err as Error)
      if (signal.aborted) throw new InferError('DEADLINE_EXCEEDED', 'cancelled or timed out while sending')
      throw new InferError('INTERNAL', `connection lost: ${(err as Error).message}`, {}, { cause: err })
    }
    return {
      requestBytes: bytes.length,
      ...(connection ? { connection } : {}),
      frames: readResponses(lp, signal),
      close: () => stream.close(),
      abort: (err) => stream.abort(err)
    }
  }
}
