// Training jobs over HTTP for a ModelFactory dashboard page (admin only): POST /v1/training/jobs
// starts one (the same request /openlora/train takes: base model id, datanet id@version,
// hyperparameters), GET /v1/training/jobs lists them newest first, GET /v1/training/jobs/:id is
// one job with its loss curve so far and, when done, the adapter CID and the signed training
// record; POST /v1/training/jobs/:id/register registers a done job's adapter on-chain with the
// datanets of its record. docs/TRAINING.md describes the JSON.
import type { FastifyInstance } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from '../../common/schema.ts'
import { TrainJobRequestSchema } from '../../protocols/training/train-protocol.ts'
import { GatewayError } from '../errors.ts'
import { ErrorResponse } from '../schemas.ts'
import { MAX_QUEUED, type TrainingJob, type TrainingJobs } from '../training-jobs.ts'

const Job = z.object({
  id: z.string(),
  state: z.enum(['queued', 'running', 'done', 'failed']),
  request: z.record(z.string(), z.unknown()),
  steps: z.number(),
  losses: z.array(z.number()),
  createdAt: z.number(),
  finishedAt: z.number().nullable(),
  cid: z.string().nullable(),
  record: z.unknown(),
  error: z.string().nullable(),
  registration: z
    .object({
      adapter: z.string(),
      adapterId: z.string(),
      owner: z.string(),
      datanets: z.array(z.object({ id: z.string(), weightBps: z.number() })),
      tx: z.string()
    })
    .nullable()
})

const RegisterBody = z
  .strictObject({
    /** the adapter's fee in wei per 1k tokens, a decimal string (default 0) */
    feePer1kTokens: z
      .string()
      .regex(/^\d{1,30}$/, 'a whole number of wei as a decimal string')
      .optional()
  })
  .optional()

const notFound = (id: string) =>
  new GatewayError(404, 'not_found_error', `no training job ${id}`, { code: 'training_job_not_found' })

const view = (j: TrainingJob) => ({ ...j, losses: [...j.losses] })

export async function trainingRoutes(
  app: FastifyInstance,
  opts: { training?: TrainingJobs; requireAdmin: (req: unknown) => void }
): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>()
  const jobs = () => {
    if (!opts.training)
      throw new GatewayError(400, 'invalid_request_error', 'this node does not offer training', {
        code: 'training_not_offered'
      })
    return opts.training
  }
  r.post(
    '/v1/training/jobs',
    {
      schema: {
        summary: 'Start a LoRA training job on a datanet this node holds (admin)',
        body: TrainJobRequestSchema,
        response: { 202: Job, 400: ErrorResponse, 401: ErrorResponse, 429: ErrorResponse }
      }
    },
    async (req, reply) => {
      opts.requireAdmin(req)
      const job = jobs().start(req.body)
      if (!job)
        throw new GatewayError(429, 'rate_limit_error', `${MAX_QUEUED} training jobs are queued; try later`, {
          code: 'training_queue_full'
        })
      return reply.code(202).send(view(job))
    }
  )
  r.get(
    '/v1/training/jobs',
    {
      schema: {
        summary: 'Training jobs, newest first (admin)',
        response: { 200: z.object({ data: z.array(Job) }), 400: ErrorResponse, 401: ErrorResponse }
      }
    },
    async (req) => {
      opts.requireAdmin(req)
      return { data: jobs().list().map(view) }
    }
  )
  r.get(
    '/v1/training/jobs/:id',
    {
      schema: {
        summary: 'One training job: state, loss curve so far, result (admin)',
        params: z.object({ id: z.string().max(64) }),
        response: { 200: Job, 400: ErrorResponse, 401: ErrorResponse, 404: ErrorResponse }
      }
    },
    async (req) => {
      opts.requireAdmin(req)
      const job = jobs().get(req.params.id)
      if (!job) throw notFound(req.params.id)
      return view(job)
    }
  )
  r.post(
    '/v1/training/jobs/:id/register',
    {
      schema: {
        summary: "Register a done job's adapter on-chain with its record's datanets (admin)",
        params: z.object({ id: z.string().max(64) }),
        body: RegisterBody,
        response: {
          200: Job,
          400: ErrorResponse,
          401: ErrorResponse,
          404: ErrorResponse,
          409: ErrorResponse,
          502: ErrorResponse
        }
      }
    },
    async (req) => {
      opts.requireAdmin(req)
      const job = await jobs().register(req.params.id, BigInt(req.body?.feePer1kTokens ?? '0'))
      if (!job) throw notFound(req.params.id)
      return view(job)
    }
  )
}
