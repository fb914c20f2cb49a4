// How the infer protocol joins the node (src/node/extensions.ts): an `infer` config section and
// three services built in order — `serving` (models, adapter stores, engine; the node advertises
// its capabilities), `adapterExchange` (serves adapter bytes by CID and fetches missing ones) and
// `infer` (the /openlora/infer/1.0.0 handler, routing through the PeerTable). A node with no
// models configured still relays jobs to peers that serve them.

import { join, resolve } from 'node:path'
import { CID } from 'multiformats/cid'
import { provenanceCommitment } from '../../attribution/provenance.ts'
import { messageOf, parseWith, z } from '../../common/schema.ts'
import type { NodeComponents, NodeConfig, NodeExtension, Service } from '../../common/service.ts'
import {
  DECODE_KERNELS,
  type DecodeKernels,
  PROMPT_KERNELS,
  type PromptKernels
} from '../../runtime/decode-kernels.ts'
import { DEFAULT_LIMITS, engineLimitFields } from '../../runtime/engine/config.ts'
import { MODEL_DEFAULTS } from '../../runtime/model/defaults.ts'
import { SPIN_POLICIES, type SpinPolicy } from '../../runtime/spinning.ts'
import { WEIGHT_FORMATS, type WeightFormat } from '../../runtime/weight-format.ts'
import type { ServingStack } from '../../serving/stack.ts'
import { addAdapterFetchAction } from '../adapter-exchange/admin-fetch.ts'
import { AdapterExchange, type AdapterExchangeInit } from '../adapter-exchange/exchange.ts'
import * as C from './constants.ts'
import { InferError } from './errors.ts'
import { InferService } from './infer.ts'

// Every key's range and default, in one place. The engine's limits (maxBatch, maxSeqLen,
// maxQueued, maxNewTokens) and the LoRA pool defaults are the runtime's own, reused here so the
// config file and the library never disagree.
export const InferConfigSchema = z.strictObject({
  /** Hugging Face checkpoint directories this node serves; empty = relay only */
  models: z
    .array(z.string().min(1))
    .max(8)
    .default([])
    .describe('a list of checkpoint directories (at most 8)'),
  /** where built ONNX graphs are cached; '' = <dataDir>/model-cache */
  modelCacheDir: z.string().default('').describe("a directory, or '' for <dataDir>/model-cache"),
  executionProvider: z.enum(['cpu', 'cuda']).default('cpu'),
  /** base weights as built into the graph: fp32 (exact), int8 or int4 (block-quantized; faster, see docs/RUNTIME-MODEL.md) */
  weightFormat: z.enum(WEIGHT_FORMATS as unknown as [WeightFormat, ...WeightFormat[]]).default('fp32'),
  /**
   * what runs decode passes (one new token a row): the native engine (runtime/native/, faster at
   * small batches) where the model and machine can run it (`auto`), always (`native`: the node
   * refuses to start when it cannot, saying why), or never (`ort`)
   */
  decodeKernels: z.enum(DECODE_KERNELS as unknown as [DecodeKernels, ...DecodeKernels[]]).default('auto'),
  /**
   * what runs prompt passes when decode passes run natively: ORT (`ort`), the same engine
   * (`native`: int8/int4 prompts on AMX where the CPU has it, ~2-6x ORT's, at +1 byte a weight of
   * memory; fp32 1.2-1.3x ORT's; docs/NATIVE-DECODE.md "Prompts"), or `auto` (native for fp32
   * weights on the engine's AVX-512 kernels, else ORT). Ignored when decode passes run on ORT.
   */
  promptKernels: z.enum(PROMPT_KERNELS as unknown as [PromptKernels, ...PromptKernels[]]).default('auto'),
  /** ORT intra-op threads; 0 = ORT's choice (one per core) */
  intraOpThreads: z.int().min(0).max(256).default(0),
  /**
   * let ORT's threads spin between ops (runtime/spinning.ts): faster steps on a machine the node
   * has to itself, much slower on a shared one (runtime/model/loaded-model.ts), hence off by
   * default. true = 'in-run': spin while a step is in flight, park the threads when it returns,
   * so an idle node sleeps; 'always' = ORT's own spinning, left on between steps.
   */
  threadSpinning: z
    .union([z.boolean(), z.enum(SPIN_POLICIES as unknown as [SpinPolicy, ...SpinPolicy[]])])
    .default(false),
  maxBatch: engineLimitFields.maxBatch,
  /** tokens per sequence (prompt + output); 0 = the model's limit, at most 2048 */
  maxSeqLen: z
    .int()
    .min(0)
    .max(1 << 20)
    .default(0),
  /** LoRA slots per pool (slot 0 is "no adapter"); the model's default, which is safe for an 8B model */
  slots: z.int().min(2).max(100_000).default(MODEL_DEFAULTS.pool.slots),
  maxRank: z.int().min(1).max(4096).default(MODEL_DEFAULTS.pool.maxRank),
  maxQueued: engineLimitFields.maxQueued,
  /** the engine's default, capped at what a request frame may ask for */
  maxNewTokens: engineLimitFields.maxNewTokens
    .unwrap()
    .max(C.MAX_NEW_TOKENS)
    .default(DEFAULT_LIMITS.maxNewTokens),
  warmBudgetMb: z
    .int()
    .min(1)
    .max(1 << 20)
    .default(2048),
  maxConcurrentJobsPerPeer: z.int().min(1).max(10_000).default(C.DEFAULT_MAX_CONCURRENT_JOBS_PER_PEER),
  requestsPerSecondPerPeer: z.int().min(1).max(100_000).default(C.DEFAULT_REQUESTS_PER_SECOND_PER_PEER),
  requestBurstPerPeer: z.int().min(1).max(100_000).default(C.DEFAULT_REQUEST_BURST_PER_PEER),
  maxConcurrentJobs: z.int().min(1).max(100_000).default(C.DEFAULT_MAX_CONCURRENT_JOBS),
  maxPromptTokens: z.int().min(1).max(C.MAX_PROMPT_IDS).default(C.DEFAULT_MAX_PROMPT_TOKENS),
  /** fetch adapters this node lacks from peers that advertise them */
  fetchAdapters: z.boolean().default(true)
})

export type InferConfig = z.output<typeof InferConfigSchema>

/** The body of POST /adapters/add (what `openlora adapter add` sends to a running node). */
const AddAdapterBodySchema = z.strictObject({
  dir: z.string().min(1).max(4096).describe('an adapter directory'),
  model: z.string().min(1).max(4096).describe('a model id or checkpoint directory').optional()
})

export const INFER_CONFIG_DEFAULTS: InferConfig = InferConfigSchema.parse({})

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
  return InferConfigSchema.parse(config.infer ?? {})
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
      decodeKernels: c.decodeKernels,
      promptKernels: c.promptKernels,
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
    components.logger.child('serving'),
    components.metrics
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
    const b = parseWith(AddAdapterBodySchema, body, {
      at: 'body',
      error: (i) => new InferError('BAD_REQUEST', messageOf(i))
    })
    return stack.importAdapter(b.dir, b.model)
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
  const exchange = new AdapterExchange(
    {
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
      scores: components.peerScores,
      logger: components.logger.child('adapter-exchange'),
      metrics: components.metrics
    },
    adapterExchangeInit(components.config)
  )
  // `openlora adapter fetch CID` on a running node
  addAdapterFetchAction(components, exchange, () => serving)
  return exchange
}

/** The node config's `exchange.adapter` section as the exchange's init (sizes in bytes). */
function adapterExchangeInit(config: NodeComponents['config']): AdapterExchangeInit {
  const { maxAdapterMb, fetchTimeoutMs, ...limits } = config.exchange.adapter
  return { maxAdapterBytes: maxAdapterMb * 2 ** 20, fetchTimeoutMs, limits }
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
      attribution: async (job) => {
        const provider = components.services.attribution?.provider
        const t0 = performance.now()
        try {
          return await (provider ? provider(job) : provenanceCommitment(job))
        } finally {
          components.metrics.attributionSeconds.observe((performance.now() - t0) / 1000)
        }
      },
      attributionProof: async (jobId) => components.services.attribution?.proofs.get(jobId),
      scores: components.peerScores,
      metrics: components.metrics,
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
  config: { infer: { schema: InferConfigSchema } },
  services: () => ({ serving: servingService, adapterExchange: adapterExchangeService, infer: inferService })
}
