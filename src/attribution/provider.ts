// Attribution as the serving path uses it: per finished job, find the adapter's provenance,
// attribute the output, keep the full proof (LevelDB, by job id) and hand back the summary the
// receipt signs. Structurally an AttributionProvider of src/protocols/infer (which imports us,
// not the other way round).
import type { AbstractLevel } from 'abstract-level'
import { type Logger, silentLogger } from '../common/log.ts'
import { decodeCanonical, encodeCanonical } from '../crypto/cbor.ts'
import type { Hex } from '../crypto/hash.ts'
import type { Attributor } from './attribute.ts'
import type { AnyLevel } from './datanet-store.ts'
import type { AdapterProvenance, AttributionProof, AttributionSummary } from './types.ts'

export interface JobOutput {
  jobId: Hex
  modelHash: Hex
  adapter: string | null
  outputIds: number[]
}

/** Full proofs kept by the node, keyed by job id, as canonical CBOR. */
export class AttributionProofStore {
  private readonly db: AbstractLevel<unknown, string, Uint8Array>
  constructor(db: AnyLevel) {
    this.db = db.sublevel<string, Uint8Array>('attribution-proofs', { valueEncoding: 'view' }) as never
  }

  async put(jobId: Hex, proof: AttributionProof): Promise<void> {
    await this.db.put(jobId, encodeCanonical(proof))
  }

  async get(jobId: Hex): Promise<AttributionProof | undefined> {
    const v = await this.db.get(jobId)
    return v ? decodeCanonical<AttributionProof>(v) : undefined
  }
}

type AttributeFn = Pick<Attributor, 'attribute'>

export interface SpanAttributionComponents {
  /**
   * The attributor, or one per job: span indexes are per tokenizer, so a node serving several
   * base models picks the attributor of the job's model (by modelHash).
   */
  attributor: AttributeFn | ((job: JobOutput) => AttributeFn | undefined)
  /** the adapter's training provenance (from its metadata), or undefined when it declares none */
  provenanceOf(adapter: string | null): AdapterProvenance | undefined | Promise<AdapterProvenance | undefined>
  /** what to report for jobs without provenance (provenance.ts provenanceCommitment) */
  fallback(job: JobOutput): AttributionSummary | Promise<AttributionSummary>
  proofs?: AttributionProofStore
  logger?: Logger
}

/** (job) → receipt attribution summary; the full proof goes to `proofs` before the receipt is signed. */
export function spanAttributionProvider(
  c: SpanAttributionComponents
): (job: JobOutput) => Promise<AttributionSummary> {
  const log = c.logger ?? silentLogger
  return async (job) => {
    const provenance = await c.provenanceOf(job.adapter)
    const attributor = typeof c.attributor === 'function' ? c.attributor(job) : c.attributor
    if (!provenance || !attributor) return c.fallback(job)
    const t0 = performance.now()
    const { summary, proof } = await attributor.attribute(job.outputIds, provenance)
    await c.proofs?.put(job.jobId, proof)
    log.debug('job attributed', {
      jobId: job.jobId,
      method: summary.method,
      spans: proof.spans.length,
      ms: Math.round(performance.now() - t0)
    })
    return summary
  }
}
