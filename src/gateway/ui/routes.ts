// The dashboard (/ui): static ES modules from ./static (no build step), uPlot served from
// node_modules, the JSON each page loads (/ui/api/...), a live event stream (SSE) and two
// helpers the pages call: the offline receipt check and span text for the playground's
// attribution. The pages themselves are public (they hold no data); every /ui/api route goes
// through the gateway's key check like the OpenAI routes (server.ts).
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { ZodTypeProvider } from 'fastify-type-provider-zod'
import { hexBytes, uint32, z } from '../../common/schema.ts'
import { verifyReceipt } from '../../protocols/infer/receipt.ts'
import type { JobRecord } from './jobs-log.ts'

/** What the pages read (NodeView implements it over a running node). */
export interface UiData {
  overview(): Promise<unknown>
  network(): unknown
  adapters(): Promise<unknown>
  jobs(): { jobs: JobRecord[] }
  earnings(): Promise<unknown>
  datanets(): Promise<unknown>
  factory(): Promise<unknown>
  decode(model: string, ids: number[]): string | null
  onJob(listener: (j: JobRecord) => void): () => void
}

const STATIC_DIR = join(import.meta.dirname, 'static')
const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml'
}
/** the live stream's heartbeat: pages refresh what they show on it */
const TICK_MS = 3_000
/** a receipt is ~1 kB; the prompt ids that come with it are bounded by the infer protocol */
const MAX_UI_BODY_BYTES = 512 * 1024

/** uPlot (47 kB, no dependencies): the charts. Served from node_modules, so nothing is copied in. */
function uplotFiles(): Record<string, { file: string; type: string }> {
  const dist = dirname(createRequire(import.meta.url).resolve('uplot'))
  return {
    'uplot.js': { file: join(dist, 'uPlot.esm.js'), type: TYPES.js! },
    'uplot.css': { file: join(dist, 'uPlot.min.css'), type: TYPES.css! }
  }
}

const VerifyBody = z.strictObject({
  receipt: z.unknown(),
  expect: z
    .strictObject({
      jobId: hexBytes(16).optional(),
      peerId: z.string().max(128).optional(),
      promptIds: z
        .array(uint32)
        .max(1 << 17)
        .optional()
    })
    .optional()
})

const SpansBody = z.strictObject({
  model: z.string().min(1).max(256),
  spans: z.array(z.strictObject({ tokens: z.array(uint32).min(1).max(4096) })).max(256)
})

export async function uiRoutes(app: FastifyInstance, opts: { data: UiData }): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>()
  const data = opts.data
  // the file names are fixed at start: a request can only name one of them
  const files = new Map<string, { file: string; type: string }>()
  for (const name of readdirSync(STATIC_DIR)) {
    const ext = name.split('.').pop()!
    if (TYPES[ext]) files.set(name, { file: join(STATIC_DIR, name), type: TYPES[ext] })
  }
  for (const [name, f] of Object.entries(uplotFiles())) files.set(`vendor/${name}`, f)
  const hide = { hide: true }

  r.get('/ui', { schema: hide }, async (_req, reply) => reply.redirect('/ui/'))
  r.get('/ui/', { schema: hide }, async (_req, reply) =>
    reply
      .type(TYPES.html!)
      .header('cache-control', 'no-cache')
      .send(readFileSync(join(STATIC_DIR, 'index.html')))
  )
  r.get('/ui/*', { schema: hide }, async (req, reply) => {
    const name = (req.params as { '*': string })['*']
    const f = files.get(name)
    // an unknown page path (a reload on #/jobs never gets here; /ui/jobs does) gets the app
    if (!f) {
      if (/^[a-z]+$/.test(name)) return reply.redirect(`/ui/#/${name}`)
      return reply.code(404).send({
        error: {
          message: `no dashboard file ${name}`,
          type: 'invalid_request_error',
          param: null,
          code: 'unknown_route'
        }
      })
    }
    return reply.type(f.type).header('cache-control', 'no-cache').send(readFileSync(f.file))
  })

  const api = { schema: { hide: true } }
  r.get('/ui/api/overview', api, () => data.overview())
  r.get('/ui/api/network', api, async () => data.network())
  r.get('/ui/api/adapters', api, () => data.adapters())
  r.get('/ui/api/jobs', api, async () => data.jobs())
  r.get('/ui/api/earnings', api, () => data.earnings())
  r.get('/ui/api/datanets', api, () => data.datanets())
  r.get('/ui/api/factory', api, () => data.factory())

  r.post(
    '/ui/api/verify',
    { schema: { hide: true, body: VerifyBody }, bodyLimit: MAX_UI_BODY_BYTES },
    async (req) => {
      const e = req.body.expect ?? {}
      const v = await verifyReceipt(req.body.receipt, {
        ...(e.jobId !== undefined ? { jobId: e.jobId } : {}),
        ...(e.peerId !== undefined ? { peerId: e.peerId } : {}),
        ...(e.promptIds !== undefined ? { promptIds: e.promptIds } : {})
      })
      return v.ok
        ? {
            ok: true,
            jobId: v.receipt.body.jobId,
            peerId: v.receipt.body.peerId,
            operator: v.receipt.body.operator
          }
        : { ok: false, check: v.check, field: v.field, message: v.message }
    }
  )

  r.post(
    '/ui/api/spans',
    { schema: { hide: true, body: SpansBody }, bodyLimit: MAX_UI_BODY_BYTES },
    async (req) => ({ texts: req.body.spans.map((s) => data.decode(req.body.model, s.tokens)) })
  )

  r.get('/ui/api/events', api, (req, reply) => {
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    const send = (event: string, body: unknown) => {
      if (!res.destroyed && !res.writableEnded)
        res.write(`event: ${event}\ndata: ${JSON.stringify(body)}\n\n`)
    }
    send('hello', { t: Date.now() })
    const off = data.onJob((j) => send('job', j))
    const timer = setInterval(() => send('tick', { t: Date.now() }), TICK_MS)
    req.raw.on('close', () => {
      off()
      clearInterval(timer)
    })
  })
}
