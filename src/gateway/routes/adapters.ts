// vLLM's POST /v1/load_lora_adapter and /v1/unload_lora_adapter, admin only: import an adapter
// directory (or fetch a CID from the peers that advertise it) into this node's store, optionally
// under a name that `model` may then use; unload removes it from the store and drops its names.
import type { FastifyInstance } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { z } from '../../common/schema.ts'
import { ErrorResponse, LoadAdapterRequest, UnloadAdapterRequest } from '../schemas.ts'

export interface AdapterAdmin {
  load(req: {
    name?: string
    path?: string
    cid?: string
    model?: string
  }): Promise<{ cid: string; model: string; added: boolean }>
  unload(req: { name?: string; cid?: string }): Promise<{ cid: string; removed: boolean }>
}

const Loaded = z.object({
  cid: z.string(),
  model: z.string(),
  added: z.boolean(),
  lora_name: z.string().nullable()
})

export async function adapterRoutes(
  app: FastifyInstance,
  opts: { adapters: AdapterAdmin; requireAdmin: (req: unknown) => void }
): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>()
  r.post(
    '/v1/load_lora_adapter',
    {
      schema: {
        summary: 'Load a LoRA adapter (admin): a local directory or a CID fetched from peers',
        body: LoadAdapterRequest,
        response: { 200: Loaded, 400: ErrorResponse, 401: ErrorResponse, 404: ErrorResponse }
      }
    },
    async (req) => {
      opts.requireAdmin(req)
      const b = req.body
      const out = await opts.adapters.load({
        name: b.lora_name,
        path: b.lora_path,
        cid: b.cid,
        model: b.model
      })
      return { ...out, lora_name: b.lora_name ?? null }
    }
  )
  r.post(
    '/v1/unload_lora_adapter',
    {
      schema: {
        summary: 'Unload a LoRA adapter (admin): by name or CID',
        body: UnloadAdapterRequest,
        response: {
          200: z.object({ cid: z.string(), removed: z.boolean() }),
          401: ErrorResponse,
          404: ErrorResponse
        }
      }
    },
    async (req) => {
      opts.requireAdmin(req)
      return opts.adapters.unload({ name: req.body.lora_name, cid: req.body.cid })
    }
  )
}
