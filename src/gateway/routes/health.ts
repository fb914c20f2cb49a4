// GET /health (liveness plus what this node serves) and GET /metrics (Prometheus text format of
// the node's whole registry, src/metrics/; docs/METRICS.md).
import type { FastifyInstance } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from '../../common/schema.ts'
import type { NodeMetrics } from '../../metrics/registry.ts'

export interface HealthSource {
  peerId: string
  models(): string[]
  peers(): number
  load(): { queueDepth: number; freeSlots: number }
}

export async function healthRoutes(
  app: FastifyInstance,
  opts: { health: HealthSource; metrics: NodeMetrics }
): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>()
  r.get(
    '/health',
    {
      schema: {
        summary: 'Liveness and what this node serves',
        response: {
          200: z.object({
            status: z.literal('ok'),
            peerId: z.string(),
            models: z.array(z.string()),
            peers: z.number().int(),
            queueDepth: z.number().int(),
            freeSlots: z.number().int()
          })
        }
      }
    },
    async () => ({
      status: 'ok' as const,
      peerId: opts.health.peerId,
      models: opts.health.models(),
      peers: opts.health.peers(),
      ...opts.health.load()
    })
  )
  r.get(
    '/metrics',
    { schema: { summary: 'Prometheus metrics (text format)', hide: false } },
    async (_req, reply) => {
      reply.header('content-type', opts.metrics.contentType)
      return opts.metrics.scrape()
    }
  )
}
