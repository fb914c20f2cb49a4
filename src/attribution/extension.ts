// The attribution service of a node (register `attributionExtension` in src/node/extensions.ts
// after the infer extension). It opens the datanet store on the node's LevelDB, keeps adapter
// provenance and full proofs, and offers `provider`, which the infer extension uses for receipts:
// spans against the adapter's datanets with the served model's own tokenizer, else the plain
// provenance commitment.
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { hasCode } from '../common/errors.ts'
import { z } from '../common/schema.ts'
import type { NodeComponents, NodeExtension, Service } from '../common/service.ts'
import type { Hex } from '../crypto/hash.ts'
import { modelIdOf, parseModelConfig } from '../runtime/model/config.ts'
import { Attributor } from './attribute.ts'
import { DEFAULT_MIN_SPAN_TOKENS } from './constants.ts'
import { DatanetStore } from './datanet-store.ts'
import { SpanIndexCache } from './index-file.ts'
import { modelTextEncoder } from './model-tokenizer.ts'
import { provenanceCommitment } from './provenance.ts'
import { ProvenanceStore } from './provenance-store.ts'
import { AttributionProofStore, type JobOutput, spanAttributionProvider } from './provider.ts'
import type { AttributionSummary } from './types.ts'

export const AttributionConfigSchema = z.strictObject({
  /** shortest output span (tokens) credited to a datanet */
  minSpanTokens: z.int().min(1).max(4096).default(DEFAULT_MIN_SPAN_TOKENS)
})
export type AttributionConfig = z.output<typeof AttributionConfigSchema>

/** Where datanet chunks and span indexes live (the CLI uses the same place). */
export function datanetDir(dataDir: string): string {
  return join(dataDir, 'datanets')
}

export interface AttributionService extends Service {
  store: DatanetStore
  provenance: ProvenanceStore
  proofs: AttributionProofStore
  provider: (job: JobOutput) => Promise<AttributionSummary>
}

declare module '../common/service.ts' {
  interface Services {
    attribution: AttributionService
  }
  interface NodeConfig {
    attribution?: Partial<AttributionConfig>
  }
}

function attributionService(components: NodeComponents): AttributionService {
  const cfg = AttributionConfigSchema.parse(components.config.attribution ?? {})
  const log = components.logger.child('attribution')
  const store = new DatanetStore({
    db: components.db,
    dataDir: datanetDir(components.dataDir.path),
    logger: log
  })
  const provenance = new ProvenanceStore(components.db)
  const proofs = new AttributionProofStore(components.db)
  const modelDirs = (components.config.infer?.models ?? []).map((d) => resolve(d))
  // modelId → attributor with that model's tokenizer; built on the first job of the model.
  const byModel = new Map<string, Promise<Attributor>>()
  const attributorFor = async (modelId: string): Promise<Attributor | undefined> => {
    let p = byModel.get(modelId)
    if (!p) {
      p = (async () => {
        for (const dir of modelDirs) {
          const conf = parseModelConfig(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')))
          if (modelIdOf(conf, dir) !== modelId) continue
          const { encoder, tokenizerId } = await modelTextEncoder(dir)
          const indexes = new SpanIndexCache({ store, tokenizer: encoder, logger: log }, { tokenizerId })
          return new Attributor({ store, indexes, logger: log }, { minSpanTokens: cfg.minSpanTokens })
        }
        throw new Error(`no configured model directory has modelId ${modelId}`)
      })()
      byModel.set(modelId, p)
      p.catch(() => byModel.delete(modelId))
    }
    return p
  }
  // a version counts as missing only when the store says so; any other store failure propagates
  const hasVersion = (id: Hex, version: number) =>
    store.getVersion(id, version).then(
      () => true,
      (err: { code?: string }) => {
        if (err.code === 'VERSION_NOT_FOUND' || err.code === 'DATANET_NOT_FOUND') return false
        throw err
      }
    )
  // missing datanets already warned about (no exchange to copy them): once per version
  const warned = new Set<string>()
  const provide = async (job: JobOutput): Promise<AttributionSummary> => {
    const p = await provenance.get(job.adapter)
    if (!p) return provenanceCommitment(job)
    // a datanet version the adapter was trained on and this node lacks: ask the datanet exchange
    // (when the node runs one) to copy it in the background; this job gets the commitment
    const missing: { id: Hex; version: number }[] = []
    for (const d of p.datanets) if (!(await hasVersion(d.id, d.version))) missing.push(d)
    if (missing.length > 0) {
      const replicator = components.services.datanetExchange?.replicator
      for (const d of missing) replicator?.request(d.id, d.version)
      const keys = missing.map((d) => `${d.id}@${d.version}`)
      if (replicator)
        log.info(
          'datanets of the adapter are not on this node yet; receipt carries the provenance commitment',
          {
            jobId: job.jobId,
            copying: keys
          }
        )
      else if (keys.some((k) => !warned.has(k))) {
        for (const k of keys) warned.add(k)
        log.warn('datanets of the adapter are not on this node; receipts carry the provenance commitment', {
          missing: keys,
          hint: 'copy them from a peer: openlora datanet fetch ID@VERSION --from PEER --chain chain.json'
        })
      }
      return provenanceCommitment(job)
    }
    const model = components.services.serving?.models().find((m) => m.weightsHash === job.modelHash)
    const attributor = model ? await attributorFor(model.modelId) : undefined
    return spanAttributionProvider({
      attributor: () => attributor,
      provenanceOf: () => p,
      fallback: provenanceCommitment,
      proofs,
      logger: log
    })(job)
  }
  return {
    store,
    provenance,
    proofs,
    provider: async (job) => {
      try {
        return await provide(job)
      } catch (err) {
        // A receipt is still owed: attribution failing (a missing index, a bad provenance entry)
        // degrades to the commitment instead of failing the job.
        const missing = hasCode(err, 'DATANET_NOT_FOUND', 'VERSION_NOT_FOUND')
        log.warn('attribution failed; receipt carries the provenance commitment', {
          jobId: job.jobId,
          err,
          // the adapter was trained on a datanet version this node lacks: say how to get it
          ...(missing
            ? {
                hint: 'copy the datanet version from a peer that has it: openlora datanet fetch ID@VERSION --from PEER --chain chain.json'
              }
            : {})
        })
        return provenanceCommitment(job)
      }
    }
  }
}

export const attributionExtension: NodeExtension = {
  name: 'attribution',
  config: { attribution: { schema: AttributionConfigSchema } },
  services: () => ({ attribution: attributionService })
}
