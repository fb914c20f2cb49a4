// Every failure leaves the gateway in OpenAI's error shape, mapped once here (the error handler in
// server.ts): `{ error: { message, type, param, code } }` with the HTTP status OpenAI clients turn
// into their typed exceptions (400 BadRequestError, 401 AuthenticationError, 404 NotFoundError,
// 429 RateLimitError, …), and Retry-After for overload.
import { OpenLoraError } from '../common/errors.ts'

export type OpenAiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'insufficient_quota'
  | 'server_error'
  | 'timeout_error'

export interface OpenAiErrorBody {
  error: { message: string; type: OpenAiErrorType; param: string | null; code: string | null }
}

/** An error the gateway answers as is. */
export class GatewayError extends OpenLoraError<'GATEWAY_ERROR'> {
  readonly status: number
  readonly type: OpenAiErrorType
  readonly param: string | null
  readonly errorCode: string | null
  readonly retryAfterMs: number | undefined

  constructor(
    status: number,
    type: OpenAiErrorType,
    message: string,
    opts: { param?: string | null; code?: string | null; retryAfterMs?: number; cause?: unknown } = {}
  ) {
    super('GATEWAY_ERROR', message, {}, { cause: opts.cause })
    this.status = status
    this.type = type
    this.param = opts.param ?? null
    this.errorCode = opts.code ?? null
    this.retryAfterMs = opts.retryAfterMs
  }
}

export const badRequest = (message: string, param: string | null, code = 'invalid_value'): GatewayError =>
  new GatewayError(400, 'invalid_request_error', message, { param, code })

export const modelNotFound = (model: string, why = ''): GatewayError =>
  new GatewayError(
    404,
    'invalid_request_error',
    `The model \`${model}\` does not exist or no reachable node serves it${why ? `: ${why}` : ''}. GET /v1/models lists what this node and its peers serve.`,
    { param: 'model', code: 'model_not_found' }
  )

/** Infer protocol codes (src/protocols/infer/errors.ts) and the client's own, as HTTP. */
const CODE_MAP: Record<string, { status: number; type: OpenAiErrorType; code: string; param?: string }> = {
  BAD_REQUEST: { status: 400, type: 'invalid_request_error', code: 'invalid_request' },
  INVALID_PARAMETERS: { status: 400, type: 'invalid_request_error', code: 'invalid_request' },
  LIMIT_EXCEEDED: { status: 400, type: 'invalid_request_error', code: 'limit_exceeded' },
  MODEL_NOT_FOUND: { status: 404, type: 'invalid_request_error', code: 'model_not_found', param: 'model' },
  ADAPTER_NOT_FOUND: { status: 404, type: 'invalid_request_error', code: 'model_not_found', param: 'model' },
  BUSY: { status: 503, type: 'server_error', code: 'overloaded' },
  // the serving peers could not be dialled: nothing ran or was charged, a retry may find another
  PEER_UNREACHABLE: { status: 503, type: 'server_error', code: 'peer_unreachable' },
  RATE_LIMITED: { status: 429, type: 'rate_limit_error', code: 'rate_limit_exceeded' },
  PAYMENT_REQUIRED: { status: 402, type: 'insufficient_quota', code: 'payment_required' },
  PAYMENT_REFUSED: { status: 402, type: 'insufficient_quota', code: 'payment_refused' },
  BUDGET_EXHAUSTED: { status: 402, type: 'insufficient_quota', code: 'budget_exhausted' },
  DEADLINE_EXCEEDED: { status: 504, type: 'timeout_error', code: 'timeout' },
  PROTOCOL_ERROR: { status: 502, type: 'server_error', code: 'bad_upstream' },
  INTERNAL: { status: 500, type: 'server_error', code: 'internal_error' }
}

/** Any thrown value → the status, headers and body the client gets. */
export function toHttpError(err: unknown): {
  status: number
  headers: Record<string, string>
  body: OpenAiErrorBody
} {
  const e = asGatewayError(err)
  const headers: Record<string, string> = {}
  if (e.retryAfterMs !== undefined)
    headers['retry-after'] = String(Math.max(1, Math.ceil(e.retryAfterMs / 1000)))
  return {
    status: e.status,
    headers,
    body: { error: { message: e.message, type: e.type, param: e.param, code: e.errorCode } }
  }
}

export function asGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err
  const e = err as {
    code?: unknown
    message?: unknown
    statusCode?: unknown
    validation?: { instancePath?: string; message?: string; params?: { issue?: { path?: unknown[] } } }[]
    validationContext?: string
    data?: Record<string, unknown>
  }
  // fastify: schema validation (zod issues) and its own request errors (body size, JSON, timeout)
  if (Array.isArray(e?.validation) && e.validation.length > 0) {
    const v = e.validation[0]!
    const path = pathOf(v)
    const where =
      e.validationContext === 'body' || e.validationContext === undefined ? '' : `${e.validationContext} `
    return badRequest(
      `Invalid ${where}parameter${path ? ` '${path}'` : ''}: ${v.message ?? 'invalid value'}`,
      path || null
    )
  }
  if (typeof e?.code === 'string' && e.code.startsWith('FST_'))
    return fastifyError(e.code, String(e.message), e.statusCode)
  if (typeof e?.code === 'string' && CODE_MAP[e.code]) {
    const m = CODE_MAP[e.code]!
    const retry = e.data?.retryAfterMs
    return new GatewayError(m.status, m.type, String(e.message ?? e.code), {
      code: m.code,
      param: m.param ?? null,
      retryAfterMs:
        typeof retry === 'number' ? retry : m.status === 503 || m.status === 429 ? 1000 : undefined
    })
  }
  return new GatewayError(500, 'server_error', `internal error: ${String(e?.message ?? err)}`, {
    code: 'internal_error'
  })
}

function pathOf(v: { instancePath?: string; params?: { issue?: { path?: unknown[] } } }): string {
  const p = v.params?.issue?.path
  if (Array.isArray(p) && p.length > 0)
    return p.map((x, i) => (typeof x === 'number' ? `[${x}]` : `${i > 0 ? '.' : ''}${String(x)}`)).join('')
  return (v.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.')
}

function fastifyError(code: string, message: string, statusCode: unknown): GatewayError {
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError(413, 'invalid_request_error', 'Request body is larger than the 1 MiB limit.', {
        code: 'request_too_large'
      })
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return badRequest('Content-Type must be application/json.', null, 'invalid_content_type')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return badRequest('The request body is empty; send a JSON object.', null, 'invalid_json')
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return badRequest(`The request body is not valid JSON: ${message}`, null, 'invalid_json')
    default: {
      const status =
        typeof statusCode === 'number' && statusCode >= 400 && statusCode < 600 ? statusCode : 400
      return new GatewayError(status, status >= 500 ? 'server_error' : 'invalid_request_error', message, {
        code: code.toLowerCase()
      })
    }
  }
}
