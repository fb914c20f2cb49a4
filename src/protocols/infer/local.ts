// Serving a job on this node: check the payment and reserve the job's worst case (before any
// work, the adapter fetch included), fetch the adapter when a peer has to supply it, run the
// engine, record each token as owed before sending it, then sign the receipt (and store the
// payment) before the result. A job that ends any other way is still owed what it delivered.

import { type AttributionProof, AttributionProofSchema } from '../../attribution/proof-schema.ts'
import { provenanceCommitment } from '../../attribution/provenance.ts'
import { signTerms, termsJobId, voucherFromJson, voucherHash } from '../../chain/eip712.ts'
import { codeOf } from '../../common/errors.ts'
import type { Logger } from '../../common/log.ts'
import { encodeCanonical } from '../../crypto/cbor.ts'
import { type Hex, hashTokenIds, sha256Hex } from '../../crypto/hash.ts'
import type { GenerateRequest } from '../../serving/backend.ts'
import {
  encodeFrame,
  PAYMENT_REASONS,
  type PaymentTerms,
  type RequestFrame,
  type ResultFrame
} from './codec.ts'
import type { InferComponents, InferInit } from './components.ts'
import { MAX_RESPONSE_FRAME_BYTES } from './constants.ts'
import { InferError, toInferError } from './errors.ts'
import type { PaymentGate } from './gates.ts'
import type { Job } from './job.ts'
import { adapterIdOf, amountDueFor, type ReceiptBody, receiptDigest, signReceipt } from './receipt.ts'

export interface LocalContext {
  c: InferComponents
  init: Required<InferInit>
  log: Logger
}

export async function serveLocal(job: Job, fetchFrom: string[], ctx: LocalContext): Promise<void> {
  const { body } = job.frame
  const backend = ctx.c.backend
  const model = backend?.models().find((m) => m.modelId === body.model)
  if (!backend || !model) throw new InferError('MODEL_NOT_FOUND', `this node does not serve ${body.model}`)
  const req: GenerateRequest = {
    model: body.model,
    adapter: body.adapter,
    params: body.params,
    signal: job.signal,
    ...(body.prompt !== undefined ? { prompt: body.prompt } : {}),
    ...(body.promptIds !== undefined ? { promptIds: body.promptIds } : {}),
    ...(body.messages !== undefined ? { messages: body.messages } : {})
  }
  let promptTokens = body.promptIds?.length
  if (backend.countPromptTokens && body.promptIds === undefined) {
    promptTokens = await backend.countPromptTokens(req)
    if (promptTokens > ctx.init.maxPromptTokens)
      throw new InferError(
        'BAD_REQUEST',
        `prompt has ${promptTokens} tokens; this node takes at most ${ctx.init.maxPromptTokens}`,
        { limit: 'maxPromptTokens' }
      )
  }
  const gate = ctx.c.payments?.()
  // A job this node submits itself (its HTTP gateway) is free: an operator never pays itself.
  const own = job.remote === ctx.c.peerId && job.frame.route.length === 0
  const price = own ? '0' : ctx.init.pricePer1kTokens
  // per-phase times for the `job served` line (the swarm report splits a job's time with them)
  const tCheck = performance.now()
  const payment = gate && !own ? await checkPayment(gate, body, promptTokens, ctx) : undefined
  const checkMs = performance.now() - tCheck
  let finished = false
  try {
    await serveChecked(job, fetchFrom, ctx, { model, req, gate, payment, checkMs, price })
    finished = true
  } finally {
    // an abort, an error or a timeout: the tokens already sent are owed all the same (H2)
    if (payment && !finished)
      await payment.job.end().catch((err) => ctx.log.warn('recording a cut-off job failed', { err }))
  }
}

async function serveChecked(
  job: Job,
  fetchFrom: string[],
  ctx: LocalContext,
  s: {
    model: { modelId: string; weightsHash: Hex }
    req: GenerateRequest
    gate: PaymentGate | undefined
    payment: Payment | undefined
    checkMs: number
    /** wei per 1k tokens this job is charged ('0' for the node's own jobs) */
    price: string
  }
): Promise<void> {
  const { body } = job.frame
  const backend = ctx.c.backend!
  const { model, req, gate, payment, checkMs, price } = s
  if (body.adapter !== null && fetchFrom.length > 0) {
    if (!ctx.c.adapterFetcher)
      throw new InferError('ADAPTER_NOT_FOUND', `adapter ${body.adapter} is not here and fetching is off`)
    await ctx.c.adapterFetcher.fetch(body.adapter, fetchFrom, { signal: job.signal, model: body.model })
  }
  const startedAt = Date.now()
  const route = [...job.frame.route, ctx.c.peerId]
  // generate() checks and queues at once (BUSY, limits), so a refusal comes before `accepted`
  // and the job can still fail over without the client seeing a false start.
  const events = backend.generate(req)
  await job.send({
    t: 'accepted',
    jobId: body.jobId,
    servedBy: ctx.c.peerId,
    queuePosition: backend.load().queueDepth,
    route
  })
  let sent = 0
  for await (const ev of events) {
    if (ev.type === 'token') {
      // owed before it leaves: a crash right after still counts it
      if (payment) await payment.job.delivered(++sent)
      await job.send({ t: 'token', index: ev.index, id: ev.id, text: ev.text })
      continue
    }
    if (job.signal.aborted) throw job.signal.reason
    const tAttribution = performance.now()
    const attribution = await (ctx.c.attribution ?? provenanceCommitment)({
      jobId: body.jobId,
      modelHash: model.weightsHash,
      adapter: body.adapter,
      promptIds: ev.promptIds,
      outputIds: ev.outputIds
    })
    const proof = sentProof(await ctx.c.attributionProof?.(body.jobId), attribution.proofHash)
    const attributionMs = performance.now() - tAttribution
    const receiptBody: ReceiptBody = {
      v: 1,
      jobId: body.jobId,
      peerId: ctx.c.peerId,
      operator: ctx.c.operator.address,
      modelId: model.modelId,
      modelHash: model.weightsHash,
      adapter: body.adapter,
      inputHash: hashTokenIds(ev.promptIds),
      outputHash: hashTokenIds(ev.outputIds),
      promptTokens: ev.promptIds.length,
      outputTokens: ev.outputIds.length,
      pricePer1kTokens: price,
      amountDue: amountDueFor(ev.promptIds.length, ev.outputIds.length, price),
      attribution,
      voucher: payment?.hash ?? null,
      startedAt,
      finishedAt: Math.max(startedAt, Date.now())
    }
    const tSign = performance.now()
    const receipt = await signReceipt(receiptBody, {
      peerId: ctx.c.peerId,
      signPeer: (d) => ctx.c.privateKey.sign(d),
      operator: ctx.c.operator,
      domain: gate
        ? { chainId: gate.domain.chainId, verifyingContract: gate.domain.settlement }
        : ctx.init.receiptDomain
    })
    const signMs = performance.now() - tSign
    const tRecord = performance.now()
    // The payment is stored before the client sees the result (docs/CHAIN.md).
    if (payment)
      await payment.job.finish({
        amountDue: BigInt(receiptBody.amountDue),
        attribution: {
          datanets: receiptBody.attribution.datanets,
          contributors: receiptBody.attribution.contributors
        },
        receipt,
        digest: receiptDigest(receipt.body, receipt.eip712)
      })
    const recordMs = performance.now() - tRecord
    const result: ResultFrame = {
      t: 'result',
      jobId: body.jobId,
      finishReason: ev.finishReason,
      text: ev.text,
      promptIds: ev.promptIds,
      usage: { promptTokens: ev.promptIds.length, outputTokens: ev.outputIds.length },
      timings: ev.timings,
      receipt
    }
    // The proof rides along when the whole frame stays within the response limit; otherwise the
    // client gets the receipt (whose proofHash commits to the proof) and the node keeps the proof.
    // (encoded once: the bytes measured are the bytes sent)
    const withProof = proof === undefined ? undefined : { ...result, attributionProof: proof }
    const bytes = withProof && encodeFrame(withProof)
    if (withProof && bytes && bytes.byteLength <= MAX_RESPONSE_FRAME_BYTES) await job.send(withProof, bytes)
    else {
      if (withProof)
        ctx.log.warn('attribution proof left out of the result: the frame would exceed the limit', {
          jobId: body.jobId,
          limit: MAX_RESPONSE_FRAME_BYTES
        })
      await job.send(result)
    }
    ctx.log.info('job served', {
      jobId: body.jobId,
      client: body.client,
      adapter: body.adapter,
      promptTokens: ev.promptIds.length,
      outputTokens: ev.outputIds.length,
      ms: Date.now() - startedAt,
      checkMs: round(checkMs),
      attributionMs: round(attributionMs),
      signMs: round(signMs),
      recordMs: round(recordMs)
    })
    return
  }
  throw new InferError('INTERNAL', 'engine ended without a done event')
}

const round = (ms: number) => Math.round(ms * 100) / 100

/**
 * The kept proof is sent only when it is this job's (it hashes to the summary's proofHash: job
 * ids are the client's to choose, so a stored proof under the same id may be another job's) and
 * passes the schema the client checks (else the client would refuse the whole result).
 */
function sentProof(proof: unknown, proofHash: Hex): AttributionProof | undefined {
  if (proof === undefined) return undefined
  try {
    if (sha256Hex(encodeCanonical(proof)) !== proofHash) return undefined
  } catch {
    return undefined
  }
  const checked = AttributionProofSchema.safeParse(proof)
  return checked.success ? checked.data : undefined
}

type Payment = { job: Awaited<ReturnType<PaymentGate['openJob']>>; hash: Hex }

/** A paid job needs a voucher the chain layer accepts, and reserves, for its worst case. */
async function checkPayment(
  gate: PaymentGate,
  body: RequestFrame['body'],
  promptTokens: number | undefined,
  ctx: LocalContext
): Promise<Payment | undefined> {
  const price = BigInt(ctx.init.pricePer1kTokens)
  // Without a tokenizer count, the prompt's characters bound its tokens from above.
  const prompt =
    promptTokens ??
    (body.prompt?.length ?? 0) + (body.messages?.reduce((n, m) => n + m.content.length + 8, 0) ?? 0)
  const maxAmountDue = BigInt(amountDueFor(prompt, body.params.maxNewTokens, ctx.init.pricePer1kTokens))
  // Every refusal carries the terms, signed by the operator for this job (H4: a peer on the route
  // cannot change them), so the client can sign the right voucher and resend.
  const refuse = async (reason: PaymentTerms['reason'], message: string, data = {}, cause?: unknown) => {
    const terms = {
      operator: ctx.c.operator.address,
      pricePer1kTokens: ctx.init.pricePer1kTokens,
      maxAmountDue: maxAmountDue.toString(),
      chainId: gate.domain.chainId,
      settlement: gate.domain.settlement,
      jobId: body.jobId
    }
    const signature = await signTerms(ctx.c.operator, gate.domain, {
      ...terms,
      jobId: termsJobId(body.jobId),
      pricePer1kTokens: price,
      maxAmountDue
    })
    return new InferError(
      'PAYMENT_REQUIRED',
      message,
      { ...data, payment: { reason, ...terms, signature } },
      cause === undefined ? undefined : { cause }
    )
  }
  if (body.voucher === null) {
    if (price === 0n) return undefined
    throw await refuse(
      'VOUCHER_MISSING',
      `this node charges ${price} wei per 1k tokens; send a voucher to operator ${ctx.c.operator.address}`
    )
  }
  // H4: the client signed the terms it accepted with its request; this node serves only its own
  // and charges exactly them (a job signed at another price or for another operator is refused
  // before any work)
  const t = body.terms
  if (
    t &&
    (t.operator.toLowerCase() !== ctx.c.operator.address.toLowerCase() ||
      BigInt(t.pricePer1kTokens) !== price)
  )
    throw await refuse(
      'TERMS_MISMATCH',
      `the request accepts ${t.pricePer1kTokens} wei per 1k tokens for operator ${t.operator}; this node charges ${price} for operator ${ctx.c.operator.address}`
    )
  try {
    const voucher = voucherFromJson(body.voucher)
    const paid = await gate.openJob(voucher, {
      jobId: body.jobId,
      adapterId: adapterIdOf(body.adapter),
      maxAmountDue,
      promptTokens: prompt,
      pricePer1kTokens: price
    })
    return { job: paid, hash: voucherHash(gate.domain, voucher) }
  } catch (err) {
    const e = toInferError(err)
    const reason = codeOf(err)
    if (e.code !== 'PAYMENT_REQUIRED' || reason === undefined || !PAYMENT_REASONS.includes(reason as never))
      throw err
    throw await refuse(reason as PaymentTerms['reason'], e.message, e.data, err)
  }
}
