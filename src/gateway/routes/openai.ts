// POST /v1/chat/completions and POST /v1/completions. A job goes through this node (routing,
// local serving, or a remote node paid from the gateway's wallet); the answer is OpenAI's shape
// with the `openlora` extension. Streams: headers go out only once a node accepted the job, so
// every refusal before that (unknown model, overload, payment) is a plain HTTP error the OpenAI
// client raises as its typed exception; a failure after it arrives as an `error` event.
import { randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import type { InferResult } from '../../client/client.ts'
import type { Logger } from '../../common/log.ts'
import type { NodeMetrics } from '../../metrics/registry.ts'
import type { Catalog } from '../catalog.ts'
import { GatewayError, toHttpError } from '../errors.ts'
import {
  checkVerified,
  extension,
  finishReason,
  type GatewayJobs,
  type JobPlan,
  type PlanOptions,
  planChat,
  planCompletion,
  usage
} from '../jobs.ts'
import {
  ChatCompletionRequest,
  ChatCompletionResponse,
  CompletionRequest,
  CompletionResponse,
  ErrorResponse
} from '../schemas.ts'
import { SseStream } from '../sse.ts'

export interface OpenAiRoutesOptions {
  jobs: GatewayJobs
  catalog: Catalog
  metrics: NodeMetrics
  plan: PlanOptions
  maxConcurrentJobs: number
  /** called with the request's API key (if any) before a job runs and with what it cost after */
  budget?: { check(key: unknown): void; spend(key: unknown, wei: bigint): void }
  log: Logger
}

const errors = {
  400: ErrorResponse,
  401: ErrorResponse,
  402: ErrorResponse,
  404: ErrorResponse,
  429: ErrorResponse,
  503: ErrorResponse
}

export async function openAiRoutes(app: FastifyInstance, opts: OpenAiRoutesOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>()
  let active = 0

  async function run(
    plan: JobPlan,
    body: {
      model: string
      stream?: boolean | null
      stream_options?: { include_usage?: boolean } | null
      user?: string
    },
    reply: FastifyReply,
    key: unknown
  ): Promise<unknown> {
    if (active >= opts.maxConcurrentJobs)
      throw new GatewayError(
        503,
        'server_error',
        `the gateway is running its limit of ${opts.maxConcurrentJobs} jobs; retry shortly`,
        {
          code: 'too_many_streams',
          retryAfterMs: 1000
        }
      )
    opts.budget?.check(key)
    active++
    opts.metrics.gatewayActiveJobs.inc()
    const ac = new AbortController()
    // The HTTP client went away before the answer was complete: cancel the job at once (the
    // serving node frees its batch row; no receipt, so nothing is charged for it).
    const onClose = () => {
      if (!reply.raw.writableFinished && !ac.signal.aborted) {
        ac.abort(new Error('the HTTP client disconnected'))
        opts.metrics.gatewayCancelled.inc()
      }
    }
    reply.raw.on('close', onClose)
    const id = `${plan.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`
    const created = Math.floor(Date.now() / 1000)
    try {
      if (!body.stream) {
        const res = await opts.jobs.infer(plan.input, { signal: ac.signal, verify: 'remote' })
        checkVerified(res)
        account(res, key)
        const choice = { index: 0, finish_reason: finishReason(res.finishReason), logprobs: null }
        return plan.kind === 'chat'
          ? {
              id,
              object: 'chat.completion',
              created,
              model: body.model,
              choices: [{ ...choice, message: { role: 'assistant', content: res.text, refusal: null } }],
              usage: usage(res),
              openlora: extension(res)
            }
          : {
              id,
              object: 'text_completion',
              created,
              model: body.model,
              choices: [{ ...choice, text: res.text }],
              usage: usage(res),
              openlora: extension(res)
            }
      }
      return await stream(plan, body, reply, ac.signal, id, created, key)
    } finally {
      active--
      opts.metrics.gatewayActiveJobs.dec()
      reply.raw.off('close', onClose)
    }
  }

  function account(res: InferResult, key: unknown): void {
    opts.metrics.gatewayTokens.inc({ kind: 'prompt' }, res.usage.promptTokens)
    opts.metrics.gatewayTokens.inc({ kind: 'completion' }, res.usage.outputTokens)
    const paid = res.receipt.body.voucher === null ? 0n : BigInt(res.receipt.body.amountDue)
    opts.budget?.spend(key, paid)
  }

  async function stream(
    plan: JobPlan,
    body: { model: string; stream_options?: { include_usage?: boolean } | null },
    reply: FastifyReply,
    signal: AbortSignal,
    id: string,
    created: number,
    key: unknown
  ): Promise<unknown> {
    const chat = plan.kind === 'chat'
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => ({
      id,
      object: chat ? 'chat.completion.chunk' : 'text_completion',
      created,
      model: body.model,
      choices,
      ...extra
    })
    const delta = (text: string, finish: 'stop' | 'length' | null = null) =>
      chat
        ? {
            index: 0,
            delta: text === '' && finish !== null ? {} : { content: text },
            finish_reason: finish,
            logprobs: null
          }
        : { index: 0, text, finish_reason: finish, logprobs: null }
    let sse: SseStream | undefined
    let streamed = ''
    const open = (): SseStream => {
      if (sse) return sse
      reply.hijack()
      sse = new SseStream(reply.raw)
      opts.metrics.gatewayRequests.inc({ route: reply.request.routeOptions.url ?? '', status: '200' })
      if (chat)
        sse.send(
          chunk([
            { index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null, logprobs: null }
          ])
        )
      return sse
    }
    try {
      const res = await opts.jobs.infer(plan.input, {
        signal,
        verify: 'remote',
        onAccepted: () => void open(),
        onToken: (t) => {
          const s = open()
          if (t.text === '') return
          streamed += t.text
          s.send(chunk([delta(t.text)]))
        }
      })
      checkVerified(res)
      account(res, key)
      const s = open()
      // the node holds back text that might start a stop string; the result has the final text
      const tail = res.text.startsWith(streamed) ? res.text.slice(streamed.length) : ''
      if (tail !== '') s.send(chunk([delta(tail)]))
      s.send(chunk([delta('', finishReason(res.finishReason))], { openlora: extension(res) }))
      if (body.stream_options?.include_usage) s.send(chunk([], { usage: usage(res) }))
      s.done()
    } catch (err) {
      if (!sse) throw err
      if (!signal.aborted) {
        opts.log.debug('stream failed after its start', { err })
        sse.send(toHttpError(err).body)
      }
      sse.end()
    }
    return reply
  }

  r.post(
    '/v1/chat/completions',
    {
      schema: {
        summary: 'Chat completion (the model’s chat template)',
        body: ChatCompletionRequest,
        response: { 200: ChatCompletionResponse, ...errors }
      }
    },
    async (req, reply) =>
      (await run(await planChat(req.body, opts.catalog, opts.plan), req.body, reply, req.apiKey)) as never
  )

  r.post(
    '/v1/completions',
    {
      schema: {
        summary: 'Text completion (legacy)',
        body: CompletionRequest,
        response: { 200: CompletionResponse, ...errors }
      }
    },
    async (req, reply) =>
      (await run(
        await planCompletion(req.body, opts.catalog, opts.plan),
        req.body,
        reply,
        req.apiKey
      )) as never
  )
}

declare module 'fastify' {
  interface FastifyRequest {
    /** the API key record this request authenticated with (keys.ts), when keys are on */
    apiKey?: unknown
  }
}
