// How the infer protocol joins the node (src/node/extensions.ts): an `infer` config section and
// three services built in order — `serving` (models, adapter stores, engine; the node advertises
// its capabilities), `adapterExchange` (serves adapter bytes by CID and fetches missing ones) and
// `infer` (the /openlora/infer/1.0.0 handler, routing through the PeerTable). A node with no
// models configured still relays jobs to peers that serve them.

import { join, resolve } from 'node:path'
import { CID } from 'multiformats/cid'
import { provenanceCommitment } from '../../attribution/provenance.ts'
import type { Spec } from '../../common/config-spec.ts'
import type { NodeComponents, NodeConfig, NodeExtension, Service } from '../../common/service.ts'
import { WEIGHT_FORMATS, type WeightFormat } from '../../runtime/weight-format.ts'
import type { ServingStack } from '../../serving/stack.ts'
import { AdapterExchange } from '../adapter-exchange/exchange.ts'
import * as C from './constants.ts'
import { InferError } from './errors.ts'
import { InferService } from './infer.ts'

export interface InferConfig {
  /** Hugging Face checkpoint directories this node serves; empty = relay only */
  models: string[]
  /** where built ONNX graphs are cached; '' = <dataDir>/model-cache */
  modelCacheDir: string
  executionProvider: 'cpu' | 'cuda'
  /** base weights as built into the graph: fp32 (exact) or int8 (block-quantized; faster, see docs/RUNTIME-MODEL.md) */
  weightFormat: WeightFormat
  /** ORT intra-op threads; 0 = ORT's choice (one per core) */
  intraOpThreads: number
  /**
   * let ORT's threads spin between ops: ~10 % faster steps on a machine the node has to itself,
   * much slower on a shared one (runtime/model/loaded-model.ts), hence off by default
   */
  threadSpinning: boolean
  maxBatch: number
  /** tokens per sequence (prompt + output); 0 = the model's limit, at most 2048 */
  maxSeqLen: number
  /** LoRA slots per pool (slot 0 is "no adapter") */
  slots: number
  maxRank: number
  maxQueued: number
  maxNewTokens: number
  warmBudgetMb: number
  maxConcurrentJobsPerPeer: number
  requestsPerSecondPerPeer: number
  requestBurstPerPeer: number
  maxConcurrentJobs: number
  maxPromptTokens: number
  /** fetch adapters this node lacks from peers that advertise them */
  fetchAdapters: boolean
}

const int = (min: number, max: number): Spec => ({ type: 'int', min, max })

export const INFER_CONFIG_SPEC: Spec = {
  type: 'section',
  fields: {
    models: { type: 'strings', maxItems: 8, pattern: /^.+$/, hint: 'checkpoint directories' },
    modelCacheDir: { type: 'string', hint: "a directory, or '' for <dataDir>/model-cache" },
    executionProvider: { type: 'string', enum: ['cpu', 'cuda'] },
    weightFormat: { type: 'string', enum: [...WEIGHT_FORMATS] },
    intraOpThreads: int(0, 256),
    threadSpinning: { type: 'bool' },
    maxBatch: int(1, 1024),
    maxSeqLen: int(0, 1 << 20),
    slots: int(2, 100_000),
    maxRank: int(1, 4096),
    maxQueued: int(0, 1 << 20),
    maxNewTokens: int(1, C.MAX_NEW_TOKENS),
    warmBudgetMb: int(1, 1 << 20),
    maxConcurrentJobsPerPeer: int(1, 10_000),
    requestsPerSecondPerPeer: int(1, 100_000),
    requestBurstPerPeer: int(1, 100_000),
    maxConcurrentJobs: int(1, 100_000),
    maxPromptTokens: int(1, C.MAX_PROMPT_IDS),
    fetchAdapters: { type: 'bool' }
  }
}

export const INFER_CONFIG_DEFAULTS: InferConfig = {
  models: [],
  modelCacheDir: '',
  executionProvider: 'cpu',
  weightFormat: 'fp32',
  intraOpThreads: 0,
  threadSpinning: false,
  // engine defaults (src/runtime/engine/config.ts), repeated so the config file shows them
  maxBatch: 8,
  maxSeqLen: 0,
  slots: 64,
  maxRank: 16,
  maxQueued: 64,
  maxNewTokens: 1024,
  warmBudgetMb: 2048,
  maxConcurrentJobsPerPeer: C.DEFAULT_MAX_CONCURRENT_JOBS_PER_PEER,
  requestsPerSecondPerPeer: C.DEFAULT_REQUESTS_PER_SECOND_PER_PEER,
  requestBurstPerPeer: C.DEFAULT_REQUEST_BURST_PER_PEER,
  maxConcurrentJobs: C.DEFAULT_MAX_CONCURRENT_JOBS,
  maxPromptTokens: C.DEFAULT_MAX_PROMPT_TOKENS,
  fetchAdapters: true
}

declare module '../../common/service.ts' {
  interface Services {
    serving: ServingStack & Service
    adapterExchange: AdapterExchange
    infer: InferService
  }
  interface NodeConfig {
    infer?: Partial<InferConfig>
  }
}

export function inferConfigOf(config: NodeConfig): InferConfig {
  return { ...INFER_CONFIG_DEFAULTS, ...config.infer }
}

/** Where a node keeps its adapter stores (also what `openlora adapter add|list` opens). */
export function adapterStoreDir(dataDir: string): string {
  return join(dataDir, 'adapters')
}

/** One adapter store per served model (adapters are checked against their base model). */
export function modelStoreDir(dataDir: string, modelId: string): string {
  return join(adapterStoreDir(dataDir), modelId.replace(/[^A-Za-z0-9._-]/g, '_'))
}

export function modelCacheDir(config: NodeConfig): string {
  const c = inferConfigOf(config)
  return c.modelCacheDir === '' ? join(config.dataDir, 'model-cache') : resolve(c.modelCacheDir)
}

async function servingService(components: NodeComponents): Promise<ServingStack & Service> {
  const c = inferConfigOf(components.config)
  const current = await components.capabilities.capabilities()
  // Loaded on demand: ONNX Runtime's native library is only needed by nodes that serve.
  const { ServingStack } = await import('../../serving/stack.ts')
  const stack = new ServingStack(
    {
      models: c.models.map((m) => resolve(m)),
      cacheDir: modelCacheDir(components.config),
      storeDir: (modelId) => modelStoreDir(components.dataDir.path, modelId),
      executionProvider: c.executionProvider,
      weightFormat: c.weightFormat,
      intraOpThreads: c.intraOpThreads,
      threadSpinning: c.threadSpinning,
      maxBatch: c.maxBatch,
      maxSeqLen: c.maxSeqLen,
      slots: c.slots,
      maxRank: c.maxRank,
      maxQueued: c.maxQueued,
      maxNewTokens: c.maxNewTokens,
      warmBudgetBytes: c.warmBudgetMb * 1024 * 1024,
      pricePer1kTokens: components.config.pricing.pricePer1kTokens,
      hardware: current.hardware
    },
    components.logger.child('serving')
  )
  const start = stack.start.bind(stack)
  // What `openlora adapter list` shows for a running node: each adapter in its live tier.
  components.admin.route('/adapters', async () => {
    const out: {
      model: string
      cid: string
      tier: string
      rank: number
      targets: string[]
      sizeBytes: number
    }[] = []
    for (const m of stack.models()) {
      const store = stack.store(m.modelId)
      if (!store) continue
      for (const e of await store.listCold({ limit: 10_000 }))
        out.push({
          model: m.modelId,
          cid: e.cid,
          tier: store.tierOf(e.cid) ?? 'cold',
          rank: e.rank,
          targets: e.targets,
          sizeBytes: e.sizeBytes
        })
    }
    return { adapters: out }
  })
  // `openlora adapter add` on a running node: the store is the node's (its LevelDB is locked)
  components.admin.action('/adapters/add', async (body) => {
    const b = body as { dir?: unknown; model?: unknown } | null
    if (typeof b?.dir !== 'string' || b.dir.length === 0 || b.dir.length > 4096)
      throw new InferError(
        'BAD_REQUEST',
        'body must be { dir: adapter directory, model?: model id or checkpoint directory }'
      )
    if (b.model !== undefined && (typeof b.model !== 'string' || b.model.length > 4096))
      throw new InferError('BAD_REQUEST', 'model must be a model id or checkpoint directory')
    return stack.importAdapter(b.dir, b.model as string | undefined)
  })
  return Object.assign(stack, {
    start: async () => {
      await start()
      if (c.models.length > 0) components.capabilities.use(stack)
    }
  })
}

function adapterExchangeService(components: NodeComponents): AdapterExchange {
  const serving = components.services.serving
  // The stores exist only after serving started, so both sides look them up per call: an adapter
  // is served from whichever model's store holds it, and fetched into the store of the model the
  // job asked for (checked against that base model).
  return new AdapterExchange({
    host: components.libp2p,
    source: {
      files: async (cid) => {
        for (const m of serving?.models() ?? []) {
          const s = serving?.store(m.modelId)
          if (s && (await s.has(cid))) return s.files(cid)
        }
        throw new Error(`adapter ${cid} is not in this node's stores`)
      }
    },
    sink: {
      importFiles: async (files, opts) => {
        const s = serving?.store(opts.model)
        if (!s)
          throw new Error(
            opts.model === undefined
              ? 'this node has no adapter store'
              : `this node does not serve ${opts.model}`
          )
        return s.importFiles(files, { expectedCid: opts.expectedCid })
      }
    },
    logger: components.logger.child('adapter-exchange')
  })
}

function inferService(components: NodeComponents): InferService {
  const c = inferConfigOf(components.config)
  const serving = components.services.serving
  const exchange = components.services.adapterExchange
  return new InferService(
    {
      host: components.libp2p,
      peerId: components.identity.peerId.toString(),
      privateKey: components.identity.privateKey,
      operator: components.identity.operator.account,
      backend: serving,
      peers: components.peerTable,
      adapterFetcher: c.fetchAdapters ? exchange : undefined,
      // the DHT's provider records (src/node/providers.ts publishes this node's)
      adapterProviders: async (cid, signal) => {
        const out: string[] = []
        for await (const p of components.libp2p.contentRouting.findProviders(CID.parse(cid), { signal })) {
          out.push(p.id.toString())
          if (out.length >= 3) break
        }
        return out
      },
      // the chain layer's service, when the node runs one (docs/CHAIN.md); looked up per job
      payments: () => components.services.chain,
      // span attribution when an `attribution` service offers a provider (docs/ATTRIBUTION.md
      // spanAttributionProvider), else the adapter provenance summary
      attribution: (job) => {
        const provider = components.services.attribution?.provider
        return provider ? provider(job) : provenanceCommitment(job)
      },
      attributionProof: async (jobId) => components.services.attribution?.proofs.get(jobId),
      logger: components.logger.child('infer')
    },
    {
      pricePer1kTokens: components.config.pricing.pricePer1kTokens,
      maxConcurrentJobsPerPeer: c.maxConcurrentJobsPerPeer,
      requestsPerSecondPerPeer: c.requestsPerSecondPerPeer,
      requestBurstPerPeer: c.requestBurstPerPeer,
      maxConcurrentJobs: c.maxConcurrentJobs,
      maxPromptTokens: c.maxPromptTokens
    }
  )
}

export const inferExtension: NodeExtension = {
  name: 'infer',
  config: { infer: { spec: INFER_CONFIG_SPEC, defaults: INFER_CONFIG_DEFAULTS } },
  services: () => ({ serving: servingService, adapterExchange: adapterExchangeService, infer: inferService })
}
