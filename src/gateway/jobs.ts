// From an OpenAI request body to one infer job and back: the parameters mapped onto the
// network's GenerationParams, the job run through this node (InferClient over the node's own
// infer service: routing, local serving or a paid remote job), and the result shaped as OpenAI's
// response with the `openlora` extension (receipt, attribution, serving node, amount paid).
import type { InferInput, InferOptions, InferResult } from '../client/client.ts'
import type { ChatMessage, WireGenerationParams } from '../protocols/infer/codec.ts'
import type { Catalog } from './catalog.ts'
import { badRequest, GatewayError, modelNotFound } from './errors.ts'
import type { ChatCompletionRequest, CompletionRequest, ResponseFormat } from './schemas.ts'

/** Runs one job through this node (an InferClient whose target is the node itself). */
export interface GatewayJobs {
  infer(input: InferInput, opts: InferOptions): Promise<InferResult>
}

export interface JobPlan {
  input: InferInput
  kind: 'chat' | 'text'
}

export interface PlanOptions {
  defaultMaxTokens: number
  /** turns a response_format into the wire's constraint; absent = response_format is refused */
  responseFormat?: (format: ResponseFormat) => WireGenerationParams['responseFormat']
}

type Common = Pick<
  ChatCompletionRequest,
  'model' | 'max_tokens' | 'temperature' | 'top_p' | 'seed' | 'stop' | 'response_format' | 'n'
>

function params(body: Common, maxTokens: number | null | undefined, opts: PlanOptions): WireGenerationParams {
  const p: WireGenerationParams = { maxNewTokens: maxTokens ?? body.max_tokens ?? opts.defaultMaxTokens }
  // OpenAI's top_p of 0 keeps only the most likely token: greedy, as temperature 0 is
  const greedy = body.temperature === 0 || body.top_p === 0
  if (!greedy) {
    // OpenAI's default temperature is 1 (sampling); the network's absent temperature is greedy
    p.temperature = body.temperature ?? 1
    if (body.top_p !== undefined && body.top_p !== null && body.top_p < 1) p.topP = body.top_p
  }
  if (body.seed !== undefined && body.seed !== null) p.seed = body.seed
  if (body.stop !== undefined && body.stop !== null) {
    const stops = typeof body.stop === 'string' ? [body.stop] : body.stop
    if (stops.length > 0) p.stopStrings = stops
  }
  const rf = body.response_format
  if (rf !== undefined && rf.type !== 'text') {
    if (!opts.responseFormat)
      throw badRequest(
        'response_format json_object/json_schema is not available on this node',
        'response_format'
      )
    p.responseFormat = opts.responseFormat(rf)
  }
  return p
}

function text(content: string | { type: 'text'; text: string }[] | null | undefined): string {
  if (content === null || content === undefined) return ''
  return typeof content === 'string' ? content : content.map((p) => p.text).join('')
}

export async function planChat(
  body: ChatCompletionRequest,
  catalog: Catalog,
  opts: PlanOptions
): Promise<JobPlan> {
  const target = await catalog.resolve(body.model)
  if (!target) throw modelNotFound(body.model)
  const messages: ChatMessage[] = body.messages.map((m) => ({
    // OpenAI's newer "developer" role is what chat templates know as system
    role: m.role === 'developer' ? 'system' : m.role,
    content: text(m.content)
  }))
  const chars = messages.reduce((n, m) => n + m.content.length, 0)
  if (chars > 200_000) throw badRequest(`messages hold ${chars} characters; at most 200000`, 'messages')
  return {
    kind: 'chat',
    input: {
      model: target.model,
      adapter: target.adapter,
      messages,
      params: params(body, body.max_completion_tokens ?? body.max_tokens, opts)
    }
  }
}

export async function planCompletion(
  body: CompletionRequest,
  catalog: Catalog,
  opts: PlanOptions
): Promise<JobPlan> {
  const target = await catalog.resolve(body.model)
  if (!target) throw modelNotFound(body.model)
  const p = body.prompt
  const one = Array.isArray(p) && (typeof p[0] === 'string' || Array.isArray(p[0])) ? p[0] : p
  const prompt = typeof one === 'string' ? { prompt: one } : { promptIds: one as number[] }
  if (prompt.prompt === '') throw badRequest('prompt is empty', 'prompt')
  return {
    kind: 'text',
    input: {
      model: target.model,
      adapter: target.adapter,
      ...prompt,
      params: params(body, body.max_tokens, opts)
    }
  }
}

export function finishReason(r: InferResult['finishReason']): 'stop' | 'length' {
  return r === 'length' ? 'length' : 'stop'
}

/** The `openlora` extension of a finished job. */
export function extension(r: InferResult): {
  receipt: unknown
  attribution: unknown
  node: { peerId: string; route: string[] }
  paid: string
  jobId: string
} {
  const b = r.receipt.body
  return {
    receipt: r.receipt,
    attribution:
      r.attributionProof === undefined
        ? { summary: b.attribution }
        : { summary: b.attribution, proof: r.attributionProof },
    node: { peerId: r.servedBy, route: r.route },
    paid: b.voucher === null ? '0' : b.amountDue,
    jobId: r.jobId
  }
}

export function usage(r: InferResult): {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
} {
  return {
    prompt_tokens: r.usage.promptTokens,
    completion_tokens: r.usage.outputTokens,
    total_tokens: r.usage.promptTokens + r.usage.outputTokens
  }
}

/** A receipt that fails its checks is not passed on as if it were good. */
export function checkVerified(r: InferResult): void {
  const v = r.verification
  if (v && !v.ok)
    throw new GatewayError(
      502,
      'server_error',
      `the serving node's receipt failed verification (${v.check} ${v.field}: ${v.message})`,
      {
        code: 'bad_receipt'
      }
    )
}
