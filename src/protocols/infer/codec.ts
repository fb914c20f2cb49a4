// Frames of /openlora/infer/1.0.0: each frame is one deterministic-CBOR map, sent with an
// unsigned-varint length prefix. The client sends exactly one `request`; the node answers with
// `accepted`, any number of `token` and `progress` frames, and ends with `result` or `error`.
// Decoding is strict: size first (the caller's lpStream maxDataLength), then CBOR, then the zod
// schemas below, which state every field's type and limit; the frame types are derived from them.

import { AttributionProofSchema } from '../../attribution/proof-schema.ts'
import { bytesOf, hexBytes, messageOf, parseWith, type SchemaIssue, uint32, z } from '../../common/schema.ts'
import { decodeCanonical, encodeCanonical } from '../../crypto/cbor.ts'
import { cidString } from '../../crypto/cid.ts'
import type { Hex } from '../../crypto/hash.ts'
import { GenerationParamsSchema } from '../../runtime/generate.ts'
import {
  MAX_CID_CHARS,
  MAX_ERROR_MESSAGE_CHARS,
  MAX_HOPS,
  MAX_MESSAGES,
  MAX_MODEL_ID_CHARS,
  MAX_NEW_TOKENS,
  MAX_PEER_ID_CHARS,
  MAX_PROMPT_CHARS,
  MAX_PROMPT_IDS,
  MAX_REQUEST_FRAME_BYTES,
  MAX_RESPONSE_FRAME_BYTES,
  MAX_TOKEN_TEXT_CHARS,
  MAX_VOUCHER_BYTES,
  REQUEST_SIGNATURE_DOMAIN
} from './constants.ts'
import { INFER_ERROR_CODES, type InferErrorCode, ProtocolError } from './errors.ts'
import { ReceiptSchema } from './receipt.ts'
import {
  type AcceptedTerms,
  AcceptedTermsSchema,
  PAYMENT_REASONS,
  type PaymentTerms,
  PaymentTermsSchema
} from './terms.ts'

export { type AcceptedTerms, PAYMENT_REASONS, type PaymentTerms }

const MAX_MS = 2 ** 53 - 1
const jobId = hexBytes(16)
const peerId = z.string().min(1).max(MAX_PEER_ID_CHARS)
const ms = z.number().min(0).max(MAX_MS)

/** The generation parameters of a request: the runtime's schema (one range per field on every
 * path), maxNewTokens capped at what a frame may ask for, unknown fields refused. */
export const WireGenerationParamsSchema = z.strictObject({
  ...GenerationParamsSchema.shape,
  maxNewTokens: z.int().min(1).max(MAX_NEW_TOKENS)
})
export type WireGenerationParams = z.output<typeof WireGenerationParamsSchema>

export const ChatMessageSchema = z.strictObject({
  role: z.enum(['system', 'user', 'assistant']),
  content: z.string().max(MAX_PROMPT_CHARS)
})
export type ChatMessage = z.output<typeof ChatMessageSchema>

/** A voucher in its wire form; the chain layer checks its fields, the frame only its size. */
const VoucherSchema = z
  .record(z.string(), z.unknown())
  .refine((v) => encodeCanonical(v).byteLength <= MAX_VOUCHER_BYTES, {
    error: `a voucher must encode to at most ${MAX_VOUCHER_BYTES} bytes`
  })

/** The part of the request the client signs; forwarding never changes it. */
export const RequestBodySchema = z
  .strictObject({
    v: z.literal(1).describe('1 (this node speaks request version 1)'),
    jobId,
    model: z.string().min(1).max(MAX_MODEL_ID_CHARS),
    adapter: cidString(MAX_CID_CHARS).nullable(),
    prompt: z.string().max(MAX_PROMPT_CHARS).optional(),
    promptIds: z.array(uint32).min(1).max(MAX_PROMPT_IDS).optional(),
    messages: z
      .array(ChatMessageSchema)
      .min(1)
      .max(MAX_MESSAGES)
      .refine((list) => list.reduce((n, m) => n + m.content.length, 0) <= MAX_PROMPT_CHARS, {
        error: `total content exceeds ${MAX_PROMPT_CHARS} characters`
      })
      .optional(),
    params: WireGenerationParamsSchema,
    /** ms since epoch; the job is abandoned after it */
    deadline: z.int().min(0).max(MAX_MS),
    /** the client's peer id, whose key made `signature` */
    client: peerId,
    /** a payment voucher (filled in by the chain layer); null = free job */
    voucher: VoucherSchema.nullable(),
    /** the terms the client accepted for a paid job (H4): the node serves only its own */
    terms: AcceptedTermsSchema.optional()
  })
  .refine((b) => [b.prompt, b.promptIds, b.messages].filter((x) => x !== undefined).length === 1, {
    error: 'exactly one of prompt, promptIds, messages must be given',
    path: ['prompt']
  })
export type RequestBody = z.output<typeof RequestBodySchema>

export const RequestFrameSchema = z.strictObject({
  t: z.literal('request').describe('"request" (the first frame must be a request)'),
  body: RequestBodySchema,
  /** Ed25519 by `body.client` over encodeCanonical({ domain: REQUEST_SIGNATURE_DOMAIN, body }) */
  signature: bytesOf(64),
  /** peers the job already passed through, entry first; its length is the hop count */
  route: z.array(peerId).max(MAX_HOPS)
})
export type RequestFrame = z.output<typeof RequestFrameSchema>

const AcceptedFrameSchema = z.strictObject({
  t: z.literal('accepted'),
  jobId,
  servedBy: peerId,
  queuePosition: uint32,
  route: z.array(peerId).max(MAX_HOPS + 1)
})
export type AcceptedFrame = z.output<typeof AcceptedFrameSchema>

const TokenFrameSchema = z.strictObject({
  t: z.literal('token'),
  index: uint32,
  id: uint32,
  text: z.string().max(MAX_TOKEN_TEXT_CHARS)
})
export type TokenFrame = z.output<typeof TokenFrameSchema>

const ProgressFrameSchema = z.strictObject({
  t: z.literal('progress'),
  jobId,
  tokens: uint32,
  queuePosition: z
    .int()
    .min(0)
    .max(2 ** 32)
    .nullable()
})
export type ProgressFrame = z.output<typeof ProgressFrameSchema>

const ResultFrameSchema = z.strictObject({
  t: z.literal('result'),
  jobId,
  finishReason: z.enum(['stop', 'length', 'abort']),
  text: z.string().max(MAX_NEW_TOKENS * MAX_TOKEN_TEXT_CHARS),
  promptIds: z.array(uint32).max(MAX_PROMPT_IDS),
  usage: z.strictObject({ promptTokens: uint32, outputTokens: uint32 }),
  timings: z.strictObject({ queuedMs: ms, firstTokenMs: ms, totalMs: ms }),
  receipt: ReceiptSchema,
  /**
   * The full attribution proof behind the receipt's summary (docs/ATTRIBUTION.md), when the job
   * was span-attributed and the proof fits the frame; its hash is the summary's proofHash.
   */
  attributionProof: AttributionProofSchema.optional()
})
export type ResultFrame = z.output<typeof ResultFrameSchema>

const ErrorFrameSchema = z.strictObject({
  t: z.literal('error'),
  jobId: jobId.nullable(),
  code: z.enum(INFER_ERROR_CODES),
  message: z.string().max(MAX_ERROR_MESSAGE_CHARS),
  retryAfterMs: z.int().min(0).max(3_600_000).nullable(),
  /** PAYMENT_REQUIRED only: what the serving node wants a voucher for (absent otherwise) */
  payment: PaymentTermsSchema.optional()
})
export type ErrorFrame = z.output<typeof ErrorFrameSchema>

export const ResponseFrameSchema = z.discriminatedUnion('t', [
  AcceptedFrameSchema,
  TokenFrameSchema,
  ProgressFrameSchema,
  ResultFrameSchema,
  ErrorFrameSchema
])
export type ResponseFrame = z.output<typeof ResponseFrameSchema>

export function requestSigningBytes(body: RequestBody): Uint8Array {
  return encodeCanonical({ domain: REQUEST_SIGNATURE_DOMAIN, body })
}

/** Drops absent optional fields: CBOR has no `undefined`, and the signature covers exact bytes. */
function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T
}

export function encodeFrame(frame: RequestFrame | ResponseFrame): Uint8Array {
  if (frame.t === 'request') {
    return encodeCanonical({ ...frame, body: compact({ ...frame.body, params: compact(frame.body.params) }) })
  }
  return encodeCanonical(compact(frame))
}

function decodeCbor(data: Uint8Array, max: number): unknown {
  if (data.byteLength > max) throw new ProtocolError(`frame of ${data.byteLength} bytes exceeds ${max}`)
  try {
    return decodeCanonical(data)
  } catch (err) {
    throw new ProtocolError(`frame is not canonical CBOR: ${(err as Error).message}`, {}, { cause: err })
  }
}

const malformed = (issue: SchemaIssue, cause: unknown): ProtocolError =>
  new ProtocolError(
    `malformed frame: ${messageOf(issue)}`,
    { field: issue.field, value: issue.value },
    { cause }
  )

/** Parses the request body alone (what a client signs), naming fields under `body`. */
export function parseRequestBody(v: unknown): RequestBody {
  return parseWith(RequestBodySchema, v, { at: 'body', error: malformed })
}

export function decodeRequestFrame(data: Uint8Array): RequestFrame {
  const raw = decodeCbor(data, MAX_REQUEST_FRAME_BYTES)
  return parseWith(RequestFrameSchema, raw, { at: 'frame', error: malformed })
}

const RESPONSE_TYPES = ['accepted', 'token', 'progress', 'result', 'error']

export function decodeResponseFrame(data: Uint8Array): ResponseFrame {
  const raw = decodeCbor(data, MAX_RESPONSE_FRAME_BYTES)
  // fields are named under the frame's type (`result.receipt.body.jobId`), as docs/PROTOCOL.md does
  const t = (raw as { t?: unknown } | null)?.t
  const at = typeof t === 'string' && RESPONSE_TYPES.includes(t) ? t : 'frame'
  return parseWith(ResponseFrameSchema, raw, { at, error: malformed })
}

export function errorFrame(
  jobId: Hex | null,
  code: InferErrorCode,
  message: string,
  retryAfterMs?: number,
  payment?: PaymentTerms
): ErrorFrame {
  return {
    t: 'error',
    jobId,
    code,
    message: message.slice(0, MAX_ERROR_MESSAGE_CHARS),
    retryAfterMs: retryAfterMs ?? null,
    ...(payment ? { payment } : {})
  }
}
