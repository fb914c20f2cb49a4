// GET /v1/models and GET /v1/models/:id: base models and adapters this node and its peers serve.
import type { FastifyInstance } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from '../../common/schema.ts'
import type { Catalog } from '../catalog.ts'
import { modelNotFound } from '../errors.ts'
import { ErrorResponse, ModelList, ModelObject } from '../schemas.ts'

export async function modelRoutes(app: FastifyInstance, opts: { catalog: Catalog }): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>()
  r.get(
    '/v1/models',
    {
      schema: { summary: 'Models and adapters this node and its peers serve', response: { 200: ModelList } }
    },
    async () => ({ object: 'list' as const, data: await opts.catalog.list() })
  )
  r.get(
    '/v1/models/:id',
    {
      schema: {
        summary: 'One model or adapter (by id or adapter name)',
        params: z.object({ id: z.string().min(1).max(256) }),
        response: { 200: ModelObject, 404: ErrorResponse }
      }
    },
    async (req) => {
      const all = await opts.catalog.list()
      const m = all.find((x) => x.id === req.params.id || x.openlora.aliases.includes(req.params.id))
      if (!m) throw modelNotFound(req.params.id)
      return m
    }
  )
}
