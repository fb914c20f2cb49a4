// The gateway as a node service: builds the fastify app over narrow views of the node (its infer
// service as an in-process client, the serving stack, the PeerTable, the adapter exchange) and
// listens on gateway.host:gateway.port. Start refuses a non-loopback bind without API keys.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { InferClient } from '../client/client.ts'
import type { Logger } from '../common/log.ts'
import { NodeMetrics } from '../metrics/registry.ts'
import { type Aliases, Catalog, type GatewayPeers, type GatewayServing } from './catalog.ts'
import { type GatewayConfig, isLoopbackHost } from './config.ts'
import { badRequest, GatewayError } from './errors.ts'
import { KeyAuth, KeyStore } from './keys.ts'
import type { AdapterAdmin } from './routes/adapters.ts'
import type { HealthSource } from './routes/health.ts'
import { buildGatewayApp } from './server.ts'
import { responseFormatSpec } from './structured.ts'
import type { TrainingJobs } from './training-jobs.ts'
import type { UiData } from './ui/routes.ts'

export interface GatewayComponents {
  peerId: string
  operator: string
  pricePer1kTokens: string
  dataDir: string
  /** an InferClient over this node (its `local` is the node's infer service) */
  client: Pick<InferClient, 'infer'>
  serving?: GatewayServing & {
    load(): { queueDepth: number; freeSlots: number }
    importAdapter(dir: string, model?: string): Promise<{ cid: string; added: boolean; model: string }>
    removeAdapter(cid: string): Promise<boolean>
  }
  peers?: GatewayPeers & { readonly size: number }
  fetchAdapter?: (cid: string, from: string[], opts: { model: string }) => Promise<void>
  aliases: AliasStore
  /** training jobs (ModelFactory routes) when the node offers training */
  training?: TrainingJobs
  /** the dashboard's view of the node (absent: no /ui) */
  ui?: UiData & { start(): void; stop(): void }
  /** what each API key spent (wei), kept across restarts */
  keySpend?: { load(): Promise<Map<string, bigint>>; save(id: string, spent: bigint): Promise<void> }
  /** the node's registry (src/metrics/): the gateway counts into it and serves it at /metrics */
  metrics?: NodeMetrics
  logger: Logger
}

/** Adapter names given with load_lora_adapter, kept across restarts by the caller's store. */
export interface AliasStore extends Aliases {
  set(name: string, v: { cid: string; model: string }): Promise<void>
  delete(name: string): Promise<void>
  entries(): [string, { cid: string; model: string }][]
}

export class GatewayService {
  readonly #c: GatewayComponents
  readonly #cfg: GatewayConfig
  readonly metrics: NodeMetrics
  readonly keys: KeyStore
  #app: FastifyInstance | undefined
  url: string | undefined

  constructor(components: GatewayComponents, config: GatewayConfig) {
    this.#c = components
    this.#cfg = config
    this.keys = new KeyStore(components.dataDir)
    // the node's registry; a gateway built alone (its unit tests) keeps one of its own
    this.metrics = components.metrics ?? new NodeMetrics({ defaultMetrics: false })
  }

  async start(): Promise<void> {
    if (!this.#cfg.enabled) return
    const c = this.#c
    const cfg = this.#cfg
    const loopback = isLoopbackHost(cfg.host)
    if (!loopback && this.keys.active().length === 0)
      throw new GatewayError(
        500,
        'server_error',
        `gateway.host ${cfg.host} is not a loopback address and no API key exists: anyone who reaches it could spend this node's wallet. Add a key first (openlora gateway keys add NAME) or bind to 127.0.0.1.`,
        { code: 'keys_required' }
      )
    const auth = new KeyAuth(
      this.keys,
      cfg.apiKeys || !loopback,
      () => adminToken(c.dataDir),
      (await c.keySpend?.load()) ?? new Map(),
      c.keySpend?.save
    )
    const catalog = new Catalog(c.serving, c.peers, c.aliases, {
      peerId: c.peerId,
      operator: c.operator,
      pricePer1kTokens: c.pricePer1kTokens
    })
    const health: HealthSource = {
      peerId: c.peerId,
      models: () => c.serving?.models().map((m) => m.modelId) ?? [],
      peers: () => c.peers?.size ?? 0,
      load: () => c.serving?.load() ?? { queueDepth: 0, freeSlots: 0 }
    }
    this.#app = await buildGatewayApp({
      jobs: { infer: (input, opts) => c.client.infer(c.peerId, input, opts) },
      catalog,
      metrics: this.metrics,
      auth,
      health,
      adapters: c.serving ? this.#adapterAdmin() : undefined,
      training: c.training,
      ...(c.ui ? { ui: c.ui } : {}),
      plan: { defaultMaxTokens: cfg.defaultMaxTokens, responseFormat: responseFormatSpec },
      maxConcurrentJobs: cfg.maxConcurrentStreams,
      requestTimeoutMs: cfg.requestTimeoutMs,
      idleTimeoutMs: cfg.idleTimeoutMs,
      log: c.logger
    })
    try {
      await this.#app.listen({ host: cfg.host, port: cfg.port })
    } catch (err) {
      await this.#app.close().catch(() => {})
      this.#app = undefined
      if ((err as { code?: string }).code === 'EADDRINUSE')
        throw new GatewayError(
          500,
          'server_error',
          `the gateway cannot listen on ${cfg.host}:${cfg.port}: the port is in use (another node?). Start with --gateway-port N (0 = any free port) or --set gateway.enabled=false.`,
          { code: 'port_in_use', cause: err }
        )
      throw err
    }
    const addr = this.#app.server.address()
    const port = typeof addr === 'object' && addr !== null ? addr.port : cfg.port
    const host = cfg.host.includes(':') && !cfg.host.startsWith('[') ? `[${cfg.host}]` : cfg.host
    this.url = `http://${host}:${port}`
    c.ui?.start()
    c.logger.info('gateway listening', {
      url: this.url,
      dashboard: c.ui ? `${this.url}/ui/` : null,
      keys: auth.required
    })
  }

  /** The dashboard's address while the gateway runs (undefined: not running or no /ui). */
  get dashboardUrl(): string | undefined {
    return this.url !== undefined && this.#c.ui ? `${this.url}/ui/` : undefined
  }

  async stop(): Promise<void> {
    const app = this.#app
    this.#app = undefined
    this.url = undefined
    this.#c.ui?.stop()
    // open streams are cut: their jobs are cancelled by the close handlers
    app?.server.closeAllConnections()
    await app?.close()
    // a running training job stops at its next step, before the node closes the datanet store
    await this.#c.training?.close()
  }

  #adapterAdmin(): AdapterAdmin {
    const c = this.#c
    const serving = c.serving!
    const baseModel = (model: string | undefined): string => {
      const models = serving.models().map((m) => m.modelId)
      if (model !== undefined) {
        if (!models.includes(model))
          throw badRequest(`this node does not serve model ${model}; it serves ${models.join(', ')}`, 'model')
        return model
      }
      if (models.length !== 1)
        throw badRequest(`this node serves ${models.length} models; name one in "model"`, 'model')
      return models[0]!
    }
    return {
      load: async ({ name, path, cid, model }) => {
        let out: { cid: string; model: string; added: boolean }
        if (path !== undefined) out = await serving.importAdapter(path, model)
        else {
          const m = baseModel(model)
          const had = (await serving.adapterTier(m, cid!)) !== null
          if (!had) {
            const from = (c.peers?.entries() ?? [])
              .filter((p) => Object.values(p.advert.body.adapters).some((t) => t.list.includes(cid!)))
              .map((p) => p.peerId)
            if (from.length === 0 || !c.fetchAdapter)
              throw new GatewayError(404, 'invalid_request_error', `no peer advertises adapter ${cid}`, {
                param: 'cid',
                code: 'model_not_found'
              })
            await c.fetchAdapter(cid!, from, { model: m })
          }
          out = { cid: cid!, model: m, added: !had }
        }
        if (name !== undefined) {
          const base = serving.models().some((m) => m.modelId === name)
          if (base) throw badRequest(`lora_name ${name} is a base model id`, 'lora_name')
          await c.aliases.set(name, { cid: out.cid, model: out.model })
        }
        return out
      },
      unload: async ({ name, cid }) => {
        const target = name !== undefined ? c.aliases.get(name)?.cid : cid
        if (target === undefined)
          throw new GatewayError(
            404,
            'invalid_request_error',
            `no adapter is loaded under the name ${name}`,
            {
              param: 'lora_name',
              code: 'model_not_found'
            }
          )
        const removed = await serving.removeAdapter(target)
        for (const n of c.aliases.namesOf(target)) await c.aliases.delete(n)
        if (!removed && name === undefined)
          throw new GatewayError(
            404,
            'invalid_request_error',
            `adapter ${target} is not in this node's stores`,
            {
              param: 'cid',
              code: 'model_not_found'
            }
          )
        return { cid: target, removed }
      }
    }
  }
}

function adminToken(dataDir: string): string | undefined {
  try {
    const t = (JSON.parse(readFileSync(join(dataDir, 'admin.json'), 'utf8')) as { token?: unknown }).token
    return typeof t === 'string' ? t : undefined
  } catch {
    return undefined
  }
}
