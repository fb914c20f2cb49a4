// The serving stack a node runs behind the infer protocol: for each configured checkpoint, the
// loaded model (one ORT session) with its tokenizer and its AdapterStore (cold files under the
// data dir, warm RAM, hot slots), and one Engine batching them all. It is the ServingBackend the
// infer handler calls and the CapabilitySource the adverts publish (models, adapter tiers, load,
// price), re-announced whenever an adapter changes tier.
import { mkdir } from 'node:fs/promises'
import { resolve } from 'node:path'
import { type Logger, silentLogger } from '../common/log.ts'
import type { Hex } from '../crypto/hash.ts'
import type { NodeMetrics } from '../metrics/registry.ts'
import { loadPeftAdapter, type PeftAdapter } from '../runtime/adapters/peft.ts'
import { AdapterStore } from '../runtime/adapters/store.ts'
import type { DecodeKernels, PromptKernels } from '../runtime/decode-kernels.ts'
import { Engine } from '../runtime/engine/engine.ts'
import { type LoadedModel, loadModel } from '../runtime/model/index.ts'
import { sample } from '../runtime/sampling.ts'
import { type SpinPolicy, spinningSessionConfig, spinPolicyOf } from '../runtime/spinning.ts'
import { Tokenizer } from '../runtime/tokenizer.ts'
import type { WeightFormat } from '../runtime/weight-format.ts'
import type { GenerateRequest, ServingBackend, TokenEvent } from './backend.ts'
import type { AdapterTier, Capabilities, CapabilitySource, Hardware } from './capability.ts'
import { ServingError } from './errors.ts'
import { observeJob, observeRefused, servingCollector } from './metrics.ts'

export interface ServingInit {
  /** Hugging Face checkpoint directories to serve */
  models: string[]
  /** built ONNX graphs are cached here (shared by nodes on one machine) */
  cacheDir: string
  /** the adapter store folder of a model */
  storeDir: (modelId: string) => string
  executionProvider?: 'cpu' | 'cuda'
  weightFormat?: WeightFormat
  /** what runs decode passes (runtime/decode-kernels.ts); default auto */
  decodeKernels?: DecodeKernels
  /** what runs prompt passes when decode runs natively (runtime/decode-kernels.ts); default ort */
  promptKernels?: PromptKernels
  /** ORT intra-op threads; 0 = ORT's choice */
  intraOpThreads?: number
  /** ORT's threads spin between ops (dedicated machines only; runtime/spinning.ts) */
  threadSpinning?: boolean | SpinPolicy
  maxBatch?: number
  /** tokens per sequence; 0 or absent = the model's limit, at most 2048 */
  maxSeqLen?: number
  slots?: number
  maxRank?: number
  maxQueued?: number
  maxNewTokens?: number
  warmBudgetBytes?: number
  pricePer1kTokens?: string
  hardware: Hardware
  /** cold adapters listed in capabilities (the advert Bloom-filters beyond its list limit) */
  maxAdvertisedCold?: number
}

const ALL_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']

interface Served {
  model: LoadedModel & { tokenizer: Tokenizer }
  store: AdapterStore<PeftAdapter>
}

export class ServingStack extends EventTarget implements ServingBackend, CapabilitySource {
  readonly #init: ServingInit
  readonly #log: Logger
  readonly #served = new Map<string, Served>()
  readonly #metrics: NodeMetrics | undefined
  #removeCollector: (() => void) | undefined
  #engine: Engine | undefined
  #full = false
  readonly #onChange = (): void => {
    this.dispatchEvent(new Event('changed'))
  }

  constructor(init: ServingInit, logger: Logger = silentLogger, metrics?: NodeMetrics) {
    super()
    this.#init = init
    this.#log = logger
    this.#metrics = metrics
  }

  get engine(): Engine | undefined {
    return this.#engine
  }

  /** The adapter store of a served model (the first model when none is named). */
  store(modelId?: string): AdapterStore<PeftAdapter> | undefined {
    if (modelId === undefined) return this.#served.values().next().value?.store
    return this.#served.get(modelId)?.store
  }

  async start(): Promise<void> {
    const i = this.#init
    for (const dir of i.models) {
      const loaded = await loadModel(dir, {
        cacheDir: i.cacheDir,
        executionProvider: i.executionProvider,
        weightFormat: i.weightFormat,
        ...(i.decodeKernels ? { decodeKernels: i.decodeKernels } : {}),
        ...(i.promptKernels ? { promptKernels: i.promptKernels } : {}),
        intraOpThreads: i.intraOpThreads || undefined,
        sessionConfig: spinningSessionConfig(spinPolicyOf(i.threadSpinning)),
        maxBatch: i.maxBatch,
        maxSeqLen: i.maxSeqLen || undefined,
        pool: { slots: i.slots, maxRank: i.maxRank, targets: ALL_TARGETS },
        log: this.#log.child('model')
      })
      const model = Object.assign(loaded, { tokenizer: await Tokenizer.fromDir(dir) })
      const storeDir = i.storeDir(model.modelId)
      await mkdir(storeDir, { recursive: true })
      const store = new AdapterStore<PeftAdapter>(
        { dir: storeDir, warmBudgetBytes: i.warmBudgetBytes },
        {
          model: { modelId: model.modelId, config: model.config, pools: model.pools },
          loadAdapter: loadPeftAdapter,
          logger: this.#log.child('adapters'),
          ...(this.#metrics ? { onLoad: this.#onAdapterLoad } : {})
        }
      )
      await store.start()
      store.addEventListener('changed', this.#onChange)
      this.#served.set(model.modelId, { model, store })
    }
    if (this.#served.size > 0) {
      this.#engine = new Engine(
        {
          limits: {
            maxBatch: i.maxBatch,
            // every model's KV cache holds at least this many positions
            maxSeqLen: Math.min(...[...this.#served.values()].map((s) => s.model.maxSeqLen)),
            maxQueued: i.maxQueued,
            maxNewTokens: i.maxNewTokens
          }
        },
        {
          models: [...this.#served.values()].map((s) => ({ model: s.model, adapters: s.store })),
          sample,
          logger: this.#log,
          ...(this.#metrics ? { onStep: this.#onStep } : {})
        }
      )
      this.#engine.start()
    }
    const engine = this.#engine
    this.#removeCollector = this.#metrics?.addCollector(
      servingCollector(this.#metrics, {
        loadByModel: () => engine?.loadByModel() ?? [],
        stores: () =>
          [...this.#served].map(([model, s]) => ({
            model,
            stats: () => s.store.stats(),
            tiers: () => s.store.tiers()
          }))
      })
    )
    this.#onChange()
  }

  readonly #onAdapterLoad = (from: 'warm' | 'cold', ms: number): void => {
    this.#metrics?.adapterLoads.inc({ tier: from })
    this.#metrics?.adapterLoadSeconds.observe({ tier: from }, ms / 1000)
  }

  readonly #onStep = (model: string, rows: number): void => {
    this.#metrics?.batchSize.observe({ model }, rows)
  }

  async stop(): Promise<void> {
    this.#removeCollector?.()
    await this.#engine?.stop()
    for (const s of this.#served.values()) {
      s.store.removeEventListener('changed', this.#onChange)
      await s.store.stop()
    }
    this.#served.clear()
  }

  models(): { modelId: string; weightsHash: Hex; family: string }[] {
    return [...this.#served.values()].map((s) => ({
      modelId: s.model.modelId,
      weightsHash: s.model.weightsHash,
      family: s.model.config.family
    }))
  }

  /**
   * Imports a PEFT adapter directory into the cold store of a served model (named by model id
   * or checkpoint directory; default the first), checked against that base model. The adverts
   * list it from the next capability update on.
   */
  async importAdapter(dir: string, model?: string): Promise<{ cid: string; added: boolean; model: string }> {
    const s = this.#served.get(this.modelIdFor(model))!
    const { cid, added } = await s.store.import(resolve(dir))
    return { cid, added, model: s.model.modelId }
  }

  /** The id of a served model named by id or checkpoint directory (default the first); throws MODEL_NOT_FOUND naming those served. */
  modelIdFor(model?: string): string {
    const served = [...this.#served.values()]
    const s =
      model === undefined
        ? served[0]
        : served.find((x) => x.model.modelId === model || x.model.dir === resolve(model))
    if (!s)
      throw new ServingError(
        'MODEL_NOT_FOUND',
        served.length === 0
          ? 'this node serves no models (infer.models is empty)'
          : `model ${model} is not served here; served: ${served.map((x) => `${x.model.modelId} (${x.model.dir})`).join(', ')}`
      )
    return s.model.modelId
  }

  async adapterTier(model: string, cid: string): Promise<AdapterTier | null> {
    const store = this.#served.get(model)?.store
    if (!store) return null
    return store.tierOf(cid) ?? ((await store.has(cid)) ? 'cold' : null)
  }

  load(): { queueDepth: number; freeSlots: number } {
    const m = this.#engine?.metrics()
    if (!m) return { queueDepth: 0, freeSlots: 0 }
    const depth = m.queued + m.running
    return { queueDepth: depth, freeSlots: Math.max(0, m.maxBatch + m.maxQueued - depth) }
  }

  generate(req: GenerateRequest): AsyncIterable<TokenEvent> {
    if (!this.#engine) throw new ServingError('MODEL_NOT_FOUND', `model ${req.model} is not served here`)
    let events: AsyncIterable<TokenEvent>
    try {
      events = this.#engine.generate(req)
    } catch (err) {
      if (this.#metrics) observeRefused(this.#metrics, req, err)
      throw err
    }
    if (this.#metrics) events = observeJob(this.#metrics, req, events)
    this.#noteLoad()
    const self = this
    return {
      async *[Symbol.asyncIterator]() {
        try {
          yield* events
        } finally {
          self.#noteLoad()
        }
      }
    }
  }

  /**
   * Re-advertise when the node fills up or frees again, so routers stop sending jobs to a full
   * node within the advert debounce instead of the heartbeat; queue depth in between rides the
   * heartbeat (an advert per job would flood the topic).
   */
  #noteLoad(): void {
    const full = this.load().freeSlots === 0
    if (full === this.#full) return
    this.#full = full
    this.#onChange()
  }

  /** Token ids as text with a served model's tokenizer (undefined: the model is not served here). */
  decode(model: string, ids: number[]): string | undefined {
    return this.#served.get(model)?.model.tokenizer.decode(ids, { skipSpecialTokens: true })
  }

  countPromptTokens(req: GenerateRequest): number {
    const tok = this.#served.get(req.model)?.model.tokenizer
    if (!tok) return req.promptIds?.length ?? 0
    if (req.prompt !== undefined) return tok.encode(req.prompt).length
    if (req.messages !== undefined) return tok.encodeChat(req.messages, { addGenerationPrompt: true }).length
    return req.promptIds?.length ?? 0
  }

  async capabilities(): Promise<Capabilities> {
    const hot: string[] = []
    const warm: string[] = []
    const cold: string[] = []
    for (const s of this.#served.values()) {
      const t = s.store.tiers()
      hot.push(...t.hot)
      warm.push(...t.warm)
      const listed = await s.store.listCold({ limit: this.#init.maxAdvertisedCold ?? 10_000 })
      for (const e of listed) if (!t.hot.includes(e.cid) && !t.warm.includes(e.cid)) cold.push(e.cid)
    }
    const load = this.load()
    return {
      hardware: this.#init.hardware,
      executionProvider: this.#init.executionProvider ?? 'cpu',
      models: this.models().map((m) => ({ id: m.modelId, weightsHash: m.weightsHash, family: m.family })),
      adapters: { hot, warm, cold },
      queueDepth: load.queueDepth,
      freeSlots: load.freeSlots,
      pricePer1kTokens: this.#init.pricePer1kTokens ?? '0'
    }
  }
}
