// Frames of /openlora/infer/1.0.0: each frame is one deterministic-CBOR map, sent with an
// unsigned-varint length prefix. The client sends exactly one `request`; the node answers with
// `accepted`, any number of `token` and `progress` frames, and ends with `result` or `error`.
// Decoding is strict: size first (the caller's lpStream maxDataLength), then CBOR, then schema.

import { checkProofSchema } from '../../attribution/proof-schema.ts'
import { decodeCanonical, encodeCanonical } from '../../crypto/cbor.ts'
import { parseCid } from '../../crypto/cid.ts'
import type { Hex } from '../../crypto/hash.ts'
import { MAX_SCHEMA_CHARS, type ResponseFormatSpec } from '../../runtime/constrain/format.ts'
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
  MAX_STOP_STRING_CHARS,
  MAX_STOP_STRINGS,
  MAX_STOP_TOKEN_IDS,
  MAX_TOKEN_TEXT_CHARS,
  MAX_VOUCHER_BYTES,
  REQUEST_SIGNATURE_DOMAIN
} from './constants.ts'
import { INFER_ERROR_CODES, type InferErrorCode, ProtocolError } from './errors.ts'
import { parseReceipt, type Receipt } from './receipt.ts'
import {
  address,
  arr,
  bytes,
  decimal,
  hex,
  int,
  num,
  type Obj,
  obj,
  oneOf,
  optStr,
  SchemaError,
  str,
  uint32s
} from './schema.ts'
import { PAYMENT_REASONS, type PaymentTerms } from './terms.ts'

export interface WireGenerationParams {
  maxNewTokens: number
  temperature?: number
  topK?: number
  topP?: number
  seed?: number
  stopTokenIds?: number[]
  stopStrings?: string[]
  /** structured output by constrained decoding (src/runtime/constrain) */
  responseFormat?: ResponseFormatSpec
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant'
  content: string
}

/** The part of the request the client signs; forwarding never changes it. */
export interface RequestBody {
  v: 1
  jobId: Hex
  model: string
  adapter: string | null
  prompt?: string
  promptIds?: number[]
  messages?: ChatMessage[]
  params: WireGenerationParams
  /** ms since epoch; the job is abandoned after it */
  deadline: number
  /** the client's peer id, whose key made `signature` */
  client: string
  /** a payment voucher (filled in by the chain layer); null = free job */
  voucher: Obj | null
}

export interface RequestFrame {
  t: 'request'
  body: RequestBody
  /** Ed25519 by `body.client` over encodeCanonical({ domain: REQUEST_SIGNATURE_DOMAIN, body }) */
  signature: Uint8Array
  /** peers the job already passed through, entry first; its length is the hop count */
  route: string[]
}

export interface AcceptedFrame {
  t: 'accepted'
  jobId: Hex
  servedBy: string
  queuePosition: number
  route: string[]
}
export interface TokenFrame {
  t: 'token'
  index: number
  id: number
  text: string
}
export interface ProgressFrame {
  t: 'progress'
  jobId: Hex
  tokens: number
  queuePosition: number | null
}
export interface ResultFrame {
  t: 'result'
  jobId: Hex
  finishReason: 'stop' | 'length' | 'abort'
  text: string
  promptIds: number[]
  usage: { promptTokens: number; outputTokens: number }
  timings: { queuedMs: number; firstTokenMs: number; totalMs: number }
  receipt: Receipt
  /**
   * The full attribution proof behind the receipt's summary (docs/ATTRIBUTION.md), when the job
   * was span-attributed and the proof fits the frame; its hash is the summary's proofHash.
   */
  attributionProof?: unknown
}
export interface ErrorFrame {
  t: 'error'
  jobId: Hex | null
  code: InferErrorCode
  message: string
  retryAfterMs: number | null
  /** PAYMENT_REQUIRED only: what the serving node wants a voucher for (absent otherwise) */
  payment?: PaymentTerms
}

export { PAYMENT_REASONS, type PaymentTerms }

function parsePaymentTerms(v: unknown): PaymentTerms {
  const p = obj(v, 'error.payment', [
    'reason',
    'operator',
    'pricePer1kTokens',
    'maxAmountDue',
    'chainId',
    'settlement'
  ])
  return {
    reason: oneOf(p.reason, 'error.payment.reason', PAYMENT_REASONS),
    operator: address(p.operator, 'error.payment.operator'),
    pricePer1kTokens: decimal(p.pricePer1kTokens, 'error.payment.pricePer1kTokens'),
    maxAmountDue: decimal(p.maxAmountDue, 'error.payment.maxAmountDue'),
    chainId: int(p.chainId, 'error.payment.chainId', 0, Number.MAX_SAFE_INTEGER),
    settlement: address(p.settlement, 'error.payment.settlement')
  }
}
export type ResponseFrame = AcceptedFrame | TokenFrame | ProgressFrame | ResultFrame | ErrorFrame

const MAX_MS = 2 ** 53 - 1
const ROLES = ['system', 'user', 'assistant'] as const

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

/** The attribution layer's shape and size checks (attribution/proof-schema.ts), as a SchemaError. */
function proofOf(v: unknown): unknown {
  const problem = checkProofSchema(v)
  if (problem !== undefined) throw new SchemaError('result.attributionProof', problem)
  return v
}

function decodeCbor(data: Uint8Array, max: number): unknown {
  if (data.byteLength > max) throw new ProtocolError(`frame of ${data.byteLength} bytes exceeds ${max}`)
  try {
    return decodeCanonical(data)
  } catch (err) {
    throw new ProtocolError(`frame is not canonical CBOR: ${(err as Error).message}`, {}, { cause: err })
  }
}

function wrap<T>(fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    if (err instanceof SchemaError)
      throw new ProtocolError(`malformed frame: ${err.message}`, { field: err.field }, { cause: err })
    throw err
  }
}

function parseParams(v: unknown): WireGenerationParams {
  const p = obj(v, 'body.params', [
    'maxNewTokens',
    'temperature',
    'topK',
    'topP',
    'seed',
    'stopTokenIds',
    'stopStrings',
    'responseFormat'
  ])
  const out: WireGenerationParams = {
    maxNewTokens: int(p.maxNewTokens, 'body.params.maxNewTokens', 1, MAX_NEW_TOKENS)
  }
  if (p.temperature !== undefined) out.temperature = num(p.temperature, 'body.params.temperature', 0, 10)
  if (p.topK !== undefined) out.topK = int(p.topK, 'body.params.topK', 0, 100_000)
  if (p.topP !== undefined) out.topP = num(p.topP, 'body.params.topP', 0, 1)
  if (p.seed !== undefined) out.seed = int(p.seed, 'body.params.seed', 0, 0xffffffff)
  if (p.stopTokenIds !== undefined)
    out.stopTokenIds = uint32s(p.stopTokenIds, 'body.params.stopTokenIds', MAX_STOP_TOKEN_IDS)
  if (p.stopStrings !== undefined)
    out.stopStrings = arr(p.stopStrings, 'body.params.stopStrings', MAX_STOP_STRINGS).map((s, i) =>
      str(s, `body.params.stopStrings[${i}]`, MAX_STOP_STRING_CHARS, 1)
    )
  if (p.responseFormat !== undefined) out.responseFormat = parseResponseFormat(p.responseFormat)
  return out
}

function parseResponseFormat(v: unknown): ResponseFormatSpec {
  const f = obj(v, 'body.params.responseFormat', ['type', 'schema'])
  if (f.type === 'json_object' && f.schema === undefined) return { type: 'json_object' }
  if (f.type !== 'json_schema')
    throw new SchemaError('body.params.responseFormat.type', "must be 'json_object' or 'json_schema'")
  return {
    type: 'json_schema',
    schema: str(f.schema, 'body.params.responseFormat.schema', MAX_SCHEMA_CHARS, 2)
  }
}

export function parseRequestBody(v: unknown): RequestBody {
  const b = obj(v, 'body', [
    'v',
    'jobId',
    'model',
    'adapter',
    'prompt',
    'promptIds',
    'messages',
    'params',
    'deadline',
    'client',
    'voucher'
  ])
  if (b.v !== 1) throw new SchemaError('body.v', 'must be 1 (this node speaks request version 1)')
  const inputs = ['prompt', 'promptIds', 'messages'].filter((k) => b[k] !== undefined)
  if (inputs.length !== 1)
    throw new SchemaError('body.prompt', 'exactly one of prompt, promptIds, messages must be given')
  let adapter: string | null = null
  if (b.adapter !== null) {
    adapter = str(b.adapter, 'body.adapter', MAX_CID_CHARS, 1)
    try {
      parseCid(adapter)
    } catch (err) {
      throw new SchemaError('body.adapter', (err as Error).message)
    }
  }
  const body: RequestBody = {
    v: 1,
    jobId: hex(b.jobId, 'body.jobId', 16),
    model: str(b.model, 'body.model', MAX_MODEL_ID_CHARS, 1),
    adapter,
    params: parseParams(b.params),
    deadline: int(b.deadline, 'body.deadline', 0, MAX_MS),
    client: str(b.client, 'body.client', MAX_PEER_ID_CHARS, 1),
    voucher: null
  }
  if (b.prompt !== undefined) body.prompt = str(b.prompt, 'body.prompt', MAX_PROMPT_CHARS)
  if (b.promptIds !== undefined) body.promptIds = uint32s(b.promptIds, 'body.promptIds', MAX_PROMPT_IDS, 1)
  if (b.messages !== undefined) {
    let chars = 0
    body.messages = arr(b.messages, 'body.messages', MAX_MESSAGES, 1).map((m, i) => {
      const o = obj(m, `body.messages[${i}]`, ['role', 'content'])
      const content = str(o.content, `body.messages[${i}].content`, MAX_PROMPT_CHARS)
      chars += content.length
      if (chars > MAX_PROMPT_CHARS)
        throw new SchemaError('body.messages', `total content exceeds ${MAX_PROMPT_CHARS} characters`)
      return { role: oneOf(o.role, `body.messages[${i}].role`, ROLES), content }
    })
  }
  if (b.voucher !== null) {
    const voucher = obj(b.voucher, 'body.voucher', Object.keys(b.voucher ?? {}))
    if (encodeCanonical(voucher).byteLength > MAX_VOUCHER_BYTES)
      throw new SchemaError('body.voucher', `must encode to at most ${MAX_VOUCHER_BYTES} bytes`)
    body.voucher = voucher
  }
  return body
}

function peerIds(v: unknown, field: string, max: number): string[] {
  return arr(v, field, max).map((p, i) => str(p, `${field}[${i}]`, MAX_PEER_ID_CHARS, 1))
}

export function decodeRequestFrame(data: Uint8Array): RequestFrame {
  const raw = decodeCbor(data, MAX_REQUEST_FRAME_BYTES)
  return wrap(() => {
    const f = obj(raw, 'frame', ['t', 'body', 'signature', 'route'])
    if (f.t !== 'request') throw new SchemaError('frame.t', 'the first frame must be a request')
    return {
      t: 'request',
      body: parseRequestBody(f.body),
      signature: bytes(f.signature, 'frame.signature', 64, 64),
      route: peerIds(f.route, 'frame.route', MAX_HOPS)
    }
  })
}

function usage(v: unknown): ResultFrame['usage'] {
  const u = obj(v, 'usage', ['promptTokens', 'outputTokens'])
  return {
    promptTokens: int(u.promptTokens, 'usage.promptTokens', 0, 0xffffffff),
    outputTokens: int(u.outputTokens, 'usage.outputTokens', 0, 0xffffffff)
  }
}

function timings(v: unknown): ResultFrame['timings'] {
  const t = obj(v, 'timings', ['queuedMs', 'firstTokenMs', 'totalMs'])
  return {
    queuedMs: num(t.queuedMs, 'timings.queuedMs', 0, MAX_MS),
    firstTokenMs: num(t.firstTokenMs, 'timings.firstTokenMs', 0, MAX_MS),
    totalMs: num(t.totalMs, 'timings.totalMs', 0, MAX_MS)
  }
}

export function decodeResponseFrame(data: Uint8Array): ResponseFrame {
  const raw = decodeCbor(data, MAX_RESPONSE_FRAME_BYTES)
  return wrap((): ResponseFrame => {
    const t = (raw as Obj | null)?.t
    switch (t) {
      case 'accepted': {
        const f = obj(raw, 'accepted', ['t', 'jobId', 'servedBy', 'queuePosition', 'route'])
        return {
          t,
          jobId: hex(f.jobId, 'accepted.jobId', 16),
          servedBy: str(f.servedBy, 'accepted.servedBy', MAX_PEER_ID_CHARS, 1),
          queuePosition: int(f.queuePosition, 'accepted.queuePosition', 0, 0xffffffff),
          route: peerIds(f.route, 'accepted.route', MAX_HOPS + 1)
        }
      }
      case 'token': {
        const f = obj(raw, 'token', ['t', 'index', 'id', 'text'])
        return {
          t,
          index: int(f.index, 'token.index', 0, 0xffffffff),
          id: int(f.id, 'token.id', 0, 0xffffffff),
          text: str(f.text, 'token.text', MAX_TOKEN_TEXT_CHARS)
        }
      }
      case 'progress': {
        const f = obj(raw, 'progress', ['t', 'jobId', 'tokens', 'queuePosition'])
        return {
          t,
          jobId: hex(f.jobId, 'progress.jobId', 16),
          tokens: int(f.tokens, 'progress.tokens', 0, 0xffffffff),
          queuePosition:
            f.queuePosition === null ? null : int(f.queuePosition, 'progress.queuePosition', 0, 2 ** 32)
        }
      }
      case 'result': {
        const f = obj(raw, 'result', [
          't',
          'jobId',
          'finishReason',
          'text',
          'promptIds',
          'usage',
          'timings',
          'receipt',
          'attributionProof'
        ])
        let receipt: Receipt
        try {
          receipt = parseReceipt(f.receipt)
        } catch (err) {
          if (err instanceof SchemaError) throw new SchemaError(`result.receipt.${err.field}`, err.message)
          throw err
        }
        return {
          t,
          jobId: hex(f.jobId, 'result.jobId', 16),
          finishReason: oneOf(f.finishReason, 'result.finishReason', ['stop', 'length', 'abort'] as const),
          text: str(f.text, 'result.text', MAX_NEW_TOKENS * MAX_TOKEN_TEXT_CHARS),
          promptIds: uint32s(f.promptIds, 'result.promptIds', MAX_PROMPT_IDS),
          usage: usage(f.usage),
          timings: timings(f.timings),
          receipt,
          ...(f.attributionProof === undefined ? {} : { attributionProof: proofOf(f.attributionProof) })
        }
      }
      case 'error': {
        const f = obj(raw, 'error', ['t', 'jobId', 'code', 'message', 'retryAfterMs', 'payment'])
        return {
          t,
          jobId: f.jobId === null ? null : hex(f.jobId, 'error.jobId', 16),
          code: oneOf(f.code, 'error.code', INFER_ERROR_CODES),
          message: optStr(f.message, 'error.message', MAX_ERROR_MESSAGE_CHARS) ?? '',
          retryAfterMs:
            f.retryAfterMs === null ? null : int(f.retryAfterMs, 'error.retryAfterMs', 0, 3_600_000),
          ...(f.payment !== undefined ? { payment: parsePaymentTerms(f.payment) } : {})
        }
      }
      default:
        throw new SchemaError('frame.t', 'must be one of accepted, token, progress, result, error')
    }
  })
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
