// The gateway's fastify app: zod validation (fastify-type-provider-zod), one plugin per concern
// (OpenAI routes, models, adapter admin, health/metrics, OpenAPI docs), and the one place where
// errors become OpenAI's error shape. Why fastify: schema-first routes give validation, types and
// the OpenAPI document from the same zod schema; it is the fastest well-kept Node framework, and
// its body limit and timeouts cover the slow-client cases without hand-written HTTP code.
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import Fastify, { type FastifyInstance } from 'fastify'
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod'
import type { Logger } from '../common/log.ts'
import type { NodeMetrics } from '../metrics/registry.ts'
import type { Catalog } from './catalog.ts'
import { GatewayError, toHttpError } from './errors.ts'
import type { GatewayJobs, PlanOptions } from './jobs.ts'
import type { KeyAuth } from './keys.ts'
import { type AdapterAdmin, adapterRoutes } from './routes/adapters.ts'
import { type HealthSource, healthRoutes } from './routes/health.ts'
import { modelRoutes } from './routes/models.ts'
import { openAiRoutes } from './routes/openai.ts'
import { trainingRoutes } from './routes/training.ts'
import type { TrainingJobs } from './training-jobs.ts'
import { type UiData, uiRoutes } from './ui/routes.ts'

/** OpenAI's own limit on request bodies is far larger; a node has no use for more than this. */
export const MAX_BODY_BYTES = 1024 * 1024
/** Routes anyone on the bound interface may read. */
const PUBLIC = new Set(['/health', '/openapi.json'])
/** The dashboard's pages and scripts hold no data; what they load from /ui/api needs a key. */
const isPublicUiFile = (path: string) =>
  path === '/ui' || (path.startsWith('/ui/') && !path.startsWith('/ui/api/'))

export interface GatewayAppOptions {
  jobs: GatewayJobs
  catalog: Catalog
  metrics: NodeMetrics
  auth: KeyAuth
  health: HealthSource
  adapters?: AdapterAdmin
  /** training jobs for the ModelFactory page; absent: the routes answer training_not_offered */
  training?: TrainingJobs
  /** the dashboard's data (absent: no /ui) */
  ui?: UiData
  plan: PlanOptions
  maxConcurrentJobs: number
  requestTimeoutMs: number
  idleTimeoutMs: number
  log: Logger
}

export async function buildGatewayApp(o: GatewayAppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    bodyLimit: MAX_BODY_BYTES,
    // headers and body must arrive within this; streaming answers are not bounded by it
    requestTimeout: o.requestTimeoutMs,
    // socket idle time (SSE keep-alives keep healthy streams above it)
    connectionTimeout: o.idleTimeoutMs,
    keepAliveTimeout: 5_000,
    logger: false,
    // ids in logs are the gateway's own; the request id header is echoed for tracing
    requestIdHeader: 'x-request-id'
  })
  app.server.headersTimeout = Math.min(o.requestTimeoutMs, 10_000)
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)

  app.setErrorHandler((err, req, reply) => {
    const { status, headers, body } = toHttpError(err)
    if (status >= 500) o.log.warn('gateway request failed', { url: req.url, status, err })
    else o.log.debug('gateway request refused', { url: req.url, status, msg: body.error.message })
    void reply.code(status).headers(headers).send(body)
  })
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({
      error: {
        message: `Unknown route ${req.method} ${req.url.split('?')[0]}. See GET /openapi.json or /docs.`,
        type: 'invalid_request_error',
        param: null,
        code: 'unknown_route'
      }
    })
  })
  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0]!
    if (PUBLIC.has(path) || path.startsWith('/docs') || isPublicUiFile(path) || !o.auth.required) return
    req.apiKey = o.auth.authenticate(req.headers.authorization)
  })
  app.addHook('onResponse', async (req, reply) => {
    o.metrics.gatewayRequests.inc({
      route: req.routeOptions.url ?? 'unknown',
      status: String(reply.statusCode)
    })
  })

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'OpenLoRA node gateway',
        description: 'OpenAI-compatible API of an OpenLoRA node (docs/GATEWAY.md)',
        version: '1'
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }]
    },
    transform: jsonSchemaTransform
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  await app.register(openAiRoutes, {
    jobs: o.jobs,
    catalog: o.catalog,
    metrics: o.metrics,
    plan: o.plan,
    maxConcurrentJobs: o.maxConcurrentJobs,
    budget: { check: (k) => o.auth.checkBudget(k), spend: (k, w) => o.auth.spend(k, w) },
    log: o.log
  })
  await app.register(modelRoutes, { catalog: o.catalog })
  await app.register(healthRoutes, { health: o.health, metrics: o.metrics })
  if (o.ui) await app.register(uiRoutes, { data: o.ui })
  const adapters = o.adapters
  await app.register(adapterRoutes, {
    adapters: adapters ?? {
      load: () =>
        Promise.reject(
          new GatewayError(
            400,
            'invalid_request_error',
            'this node serves no models, so it keeps no adapters'
          )
        ),
      unload: () =>
        Promise.reject(
          new GatewayError(
            400,
            'invalid_request_error',
            'this node serves no models, so it keeps no adapters'
          )
        )
    },
    requireAdmin: (req) =>
      o.auth.requireAdmin((req as { headers: { authorization?: string } }).headers.authorization)
  })
  await app.register(trainingRoutes, {
    training: o.training,
    requireAdmin: (req) =>
      o.auth.requireAdmin((req as { headers: { authorization?: string } }).headers.authorization)
  })
  return app
}
