// How the gateway joins the node (src/node/extensions.ts): a `gateway` config section and one
// service built after `infer`, over the node's own infer service (in process), serving stack,
// PeerTable and adapter exchange. Adapter names from load_lora_adapter live in the node's LevelDB.
import { InferClient } from '../client/client.ts'
import { dialerOf } from '../client/host.ts'
import type { NodeComponents, NodeConfig, NodeExtension } from '../common/service.ts'
import { type GatewayConfig, GatewayConfigSchema } from './config.ts'
import { type GatewayPayer, openPayer } from './payer.ts'
import { type AliasStore, type GatewayComponents, GatewayService } from './service.ts'
import { TrainingJobs } from './training-jobs.ts'
import { NodeView } from './ui/node-view.ts'

declare module '../common/service.ts' {
  interface Services {
    gateway: GatewayService
  }
  interface NodeConfig {
    gateway?: Partial<GatewayConfig>
  }
}

export function gatewayConfigOf(config: NodeConfig): GatewayConfig {
  return GatewayConfigSchema.parse(config.gateway ?? {})
}

async function aliasStore(components: NodeComponents): Promise<AliasStore> {
  const db = components.db.sublevel<string, string>('gateway-aliases', { valueEncoding: 'utf8' })
  const map = new Map<string, { cid: string; model: string }>()
  for await (const [k, v] of db.iterator()) {
    try {
      map.set(k, JSON.parse(v) as { cid: string; model: string })
    } catch {}
  }
  return {
    get: (name) => map.get(name),
    namesOf: (cid) => [...map].filter(([, v]) => v.cid === cid).map(([k]) => k),
    entries: () => [...map],
    set: async (name, v) => {
      await db.put(name, JSON.stringify(v))
      map.set(name, v)
    },
    delete: async (name) => {
      await db.del(name)
      map.delete(name)
    }
  }
}

function keySpendStore(components: NodeComponents): NonNullable<GatewayComponents['keySpend']> {
  const db = components.db.sublevel<string, string>('gateway-key-spend', { valueEncoding: 'utf8' })
  return {
    load: async () => {
      const m = new Map<string, bigint>()
      for await (const [k, v] of db.iterator()) if (/^[0-9]{1,78}$/.test(v)) m.set(k, BigInt(v))
      return m
    },
    save: (id, spent) => db.put(id, spent.toString())
  }
}

async function gatewayService(components: NodeComponents): Promise<GatewayService> {
  const cfg = gatewayConfigOf(components.config)
  const { identity, libp2p, services } = components
  const peerId = identity.peerId.toString()
  const log = components.logger.child('gateway')
  // Built on the first job: the payer needs the chain service's endpoint, known once it started.
  let payer: Promise<GatewayPayer | undefined> | undefined
  let client: Promise<InferClient> | undefined
  const clientOnce = (): Promise<InferClient> =>
    (client ??= (async () => {
      payer = cfg.payer === '' ? Promise.resolve(undefined) : openPayer(cfg, components, log)
      const p = await payer
      return new InferClient({
        peerId,
        privateKey: identity.privateKey,
        dial: dialerOf(libp2p),
        logger: log,
        ...(p ? { payer: p.payer } : {}),
        local: { submit: (frame, opts) => services.infer!.submit(frame, opts) }
      })
    })())
  const serving = services.serving
  const gc: GatewayComponents = {
    peerId,
    operator: identity.operator.address,
    pricePer1kTokens: components.config.pricing.pricePer1kTokens,
    dataDir: components.dataDir.path,
    client: {
      infer: async (target, input, opts) => {
        const c = clientOnce()
        // a failed start (a bad payer key) is retried by the next request, not kept
        c.catch(() => {
          client = undefined
        })
        return (await c).infer(target, input, opts)
      }
    },
    aliases: await aliasStore(components),
    ...(services.training?.provider
      ? {
          training: new TrainingJobs(services.training.provider, {
            // one training slot per node: a peer's /openlora/train job and the page's jobs take turns
            slot: services.training.slot,
            // the chain service's client exists once it started (it may start after the gateway)
            chain: () => {
              try {
                return services.chain?.client
              } catch {
                return undefined
              }
            }
          })
        }
      : {}),
    keySpend: keySpendStore(components),
    peers: components.peerTable,
    ...(cfg.dashboard ? { ui: new NodeView(components) } : {}),
    metrics: components.metrics,
    logger: log,
    ...(serving
      ? {
          serving: {
            models: () => serving.models(),
            adapterTier: (m, cid) => serving.adapterTier(m, cid),
            load: () => serving.load(),
            importAdapter: (dir, model) => serving.importAdapter(dir, model),
            listAdapters: async () => {
              const out: { model: string; cid: string; tier: 'hot' | 'warm' | 'cold' }[] = []
              for (const m of serving.models()) {
                const store = serving.store(m.modelId)
                if (!store) continue
                for (const e of await store.listCold({ limit: 10_000 }))
                  out.push({ model: m.modelId, cid: e.cid, tier: store.tierOf(e.cid) ?? 'cold' })
              }
              return out
            },
            removeAdapter: async (cid) => {
              let removed = false
              for (const m of serving.models())
                removed = (await serving.store(m.modelId)?.remove(cid)) || removed
              return removed
            }
          }
        }
      : {}),
    ...(services.adapterExchange
      ? { fetchAdapter: (cid, from, o) => services.adapterExchange!.fetch(cid, from, { model: o.model }) }
      : {})
  }
  const service = new GatewayService(gc, cfg)
  return service
}

export const gatewayExtension: NodeExtension = {
  name: 'gateway',
  config: { gateway: { schema: GatewayConfigSchema } },
  services: () => ({ gateway: gatewayService })
}
