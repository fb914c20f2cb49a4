// How training joins the node (src/node/extensions.ts): a `training` service answering
// /openlora/train/1.0.0 on the node's libp2p host. With `training.offer: true` it trains jobs on
// the datanets the attribution service holds, over the base models in `infer.models` whose
// architecture the training graph supports, signing records with the node's key; otherwise it
// answers every job with TRAINING_NOT_OFFERED. The gateway's training-job routes use the same
// provider (src/gateway/extension.ts). An offering node advertises the `train` capability (its
// price per 1k trained tokens and the model ids it trains) in its capability advert, and with a
// chain and a price above 0 charges peers' jobs with vouchers (payment.ts). Each trained adapter
// joins the serving store with its record's datanets as provenance.
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { decimalString, z } from '../../common/schema.ts'
import type { NodeComponents, NodeExtension } from '../../common/service.ts'
import type { Hex } from '../../crypto/hash.ts'
import { modelIdOf } from '../../runtime/model/config.ts'
import { readModelConfig } from '../../runtime/model/index.ts'
import { checkTrainable } from '../../runtime/training/graph.ts'
import type { SignedTrainingRecord } from '../../runtime/training/record.ts'
import type { EnsureDatanetOptions } from '../datanet-exchange/ensure.ts'
import { addTrainingDatanetAction } from './datanet-admin.ts'
import type { TrainPaymentContext } from './payment.ts'
import { localTrainingProvider } from './provider.ts'
import { declaredDatanets } from './registration.ts'
import { TrainingSlot } from './slot.ts'
import { type TrainingProvider, TrainService } from './train-protocol.ts'

export const TrainingConfigSchema = z.strictObject({
  /** train jobs from peers and the gateway (default off: training takes every core it is given) */
  offer: z.boolean().default(false),
  /** ONNX Runtime intra-op threads per job (0: its default) */
  threads: z.int().min(0).max(256).default(0),
  /** wei per 1,000 trained tokens charged to peers ("0": free; no chain: free too) */
  pricePer1kTokens: decimalString.default('0')
})
export type TrainingConfig = z.output<typeof TrainingConfigSchema>

export interface TrainingNodeService {
  start(): Promise<void>
  stop(): Promise<void>
  /** present when the node offers training */
  provider?: TrainingProvider
  /** the node's one training slot: protocol jobs and the gateway's jobs both hold it while they train */
  slot: TrainingSlot
  /** ids of the served models the training graph supports (none when the node does not offer training) */
  models(): Promise<string[]>
}

declare module '../../common/service.ts' {
  interface Services {
    training: TrainingNodeService
  }
  interface NodeConfig {
    training?: Partial<TrainingConfig>
  }
}

/** model id → dir of the served models the training graph supports (read on first use). */
async function trainableModels(dirs: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const dir of dirs) {
    try {
      const cfg = await readModelConfig(dir)
      checkTrainable(cfg)
      out[modelIdOf(cfg, dir)] = dir
    } catch {
      // a model this graph cannot train is simply not offered; jobs naming it are told which are
    }
  }
  return out
}

/**
 * A trained adapter joins the node's store for its base model (cold tier: served, and fetched by
 * CID by peers) with its record's datanets as its provenance, so its outputs are attributed to
 * exactly the data it was trained on, with the shares `adapter register` declares on-chain.
 */
async function keepTrained(
  components: NodeComponents,
  model: string,
  r: { cid: string; record: SignedTrainingRecord; dir?: string }
): Promise<void> {
  const serving = components.services.serving
  if (!r.dir || !serving) return
  await serving.importAdapter(r.dir, model)
  const bps = new Map(declaredDatanets(r.record).map((d) => [d.id, d.weightBps]))
  await components.services.attribution?.provenance.set(r.cid, {
    datanets: r.record.body.datanets.map((d) => ({
      id: d.id,
      version: d.version,
      bp: bps.get(d.id.toLowerCase() as Hex) ?? 0
    }))
  })
}

/**
 * Each named datanet at a version this node holds, copied from peers when missing (the datanet
 * exchange's `ensure`); the versions resolved, so the job trains on what was just checked. A node
 * without the datanet exchange trains on what it holds (datanetRows names what is missing).
 */
async function ensureDatanets(
  components: NodeComponents,
  asked: { id: string; version?: number }[],
  opts: EnsureDatanetOptions
): Promise<{ id: string; version?: number }[]> {
  const exchange = components.services.datanetExchange
  if (!exchange) return asked
  const out: { id: string; version?: number }[] = []
  for (const d of asked) {
    const e = await exchange.ensure(d.id.toLowerCase() as Hex, d.version, opts)
    out.push({ id: d.id, version: e.version })
  }
  return out
}

function trainingService(components: NodeComponents): TrainingNodeService {
  const cfg = TrainingConfigSchema.parse(components.config.training ?? {})
  const log = components.logger.child('training')
  let provider: TrainingProvider | undefined
  const dirs = (components.config.infer?.models ?? []).map((d) => resolve(d))
  let models: Promise<Record<string, string>> | undefined
  const key = components.identity.privateKey
  if (cfg.offer) {
    let inner: Promise<TrainingProvider> | undefined
    provider = {
      train: async (req, onStep, signal, opts) => {
        const store = components.services.attribution?.store
        if (!store) throw new Error('this node runs no attribution service, so it holds no datanets')
        models ??= trainableModels(dirs)
        inner ??= models.then((models) =>
          localTrainingProvider({
            store,
            models,
            outRoot: join(components.dataDir.path, 'trained'),
            signer: { peerId: components.identity.peerId.toString(), sign: (d) => key.sign(d) },
            threads: cfg.threads || undefined
          })
        )
        // a datanet version the node lacks is copied first (its chain's roots), from the requester
        // first: "the node fetches the datanet" (issue 21)
        const datanets = await ensureDatanets(components, [req.datanet, ...(req.moreDatanets ?? [])], {
          prefer: opts?.requester ? [opts.requester] : [],
          signal
        })
        const [first, ...more] = datanets
        const r = await (await inner).train(
          { ...req, datanet: first!, ...(req.moreDatanets ? { moreDatanets: more } : {}) },
          onStep,
          signal,
          opts
        )
        await keepTrained(components, req.model, r)
        return r
      }
    }
  }
  const price = BigInt(cfg.pricePer1kTokens)
  // looked up per job: the chain service may start after this one; no chain = free jobs
  const payment = (): TrainPaymentContext | undefined => {
    const gate = components.services.chain
    if (!gate || price === 0n) return undefined
    return {
      gate,
      operator: components.identity.operator.account,
      peerId: components.identity.peerId.toString(),
      signPeer: (d) => key.sign(d),
      price
    }
  }
  // `openlora train --datanet` on this data dir asks the node for the rows (offer or not: it is
  // the operator's own training, on the command's machine)
  addTrainingDatanetAction(components)
  const slot = new TrainingSlot()
  const service = new TrainService({ host: components.libp2p, provider, payment, slot, logger: log })
  let advertised: { remove(): void } | undefined
  return {
    provider,
    slot,
    models: async () => (provider ? Object.keys(await (models ??= trainableModels(dirs))) : []),
    start: async () => {
      if (provider) {
        await mkdir(join(components.dataDir.path, 'trained'), { recursive: true })
        models ??= trainableModels(dirs)
        const ids = Object.keys(await models)
        // the `train` capability rides on whatever the serving stack advertises (kept across use())
        if (ids.length > 0)
          advertised = components.capabilities.restrict((caps) => ({
            ...caps,
            train: { pricePer1kTokens: cfg.pricePer1kTokens, models: ids }
          }))
      }
      await service.start()
    },
    stop: async () => {
      advertised?.remove()
      await service.stop()
    }
  }
}

export const trainingExtension: NodeExtension = {
  name: 'training',
  config: { training: { schema: TrainingConfigSchema } },
  services: () => ({ training: trainingService })
}
