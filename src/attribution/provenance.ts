// Adapter provenance: the datanet versions an adapter was trained on, with weights. Adapters'
// metadata and adverts carry it, so it is checked like any input from the network.
import { encodeCanonical } from '../crypto/cbor.ts'
import { type Hex, sha256Hex } from '../crypto/hash.ts'
import { MAX_PROVENANCE_DATANETS, TOTAL_BP } from './constants.ts'
import { ProvenanceError } from './errors.ts'
import type { AdapterProvenance, AttributionSummary } from './types.ts'

const DATANET_ID = /^0x[0-9a-f]{64}$/

/**
 * What a receipt carries for a job not attributed by spans: a commitment to which base model and
 * adapter produced the output, and no datanet shares. The one definition of this hash; the infer
 * protocol (no attribution service) and the attribution service (no spans) both use it.
 */
export function provenanceCommitment(job: { modelHash: Hex; adapter: string | null }): AttributionSummary {
  return {
    method: 'provenance',
    datanets: [],
    contributors: [],
    proofHash: sha256Hex(encodeCanonical({ modelHash: job.modelHash, adapter: job.adapter }))
  }
}

export function isDatanetId(v: unknown): v is `0x${string}` {
  return typeof v === 'string' && DATANET_ID.test(v)
}

/** Checks and normalises (sorted by id) a provenance record; throws ProvenanceError naming the problem. */
export function validateProvenance(input: unknown): AdapterProvenance {
  if (
    typeof input !== 'object' ||
    input === null ||
    !Array.isArray((input as { datanets?: unknown }).datanets)
  )
    throw new ProvenanceError('provenance must be an object { datanets: [{ id, version, bp }] }')
  const list = (input as { datanets: unknown[] }).datanets
  if (list.length === 0 || list.length > MAX_PROVENANCE_DATANETS)
    throw new ProvenanceError(
      `provenance must name 1 to ${MAX_PROVENANCE_DATANETS} datanets, got ${list.length}`,
      { count: list.length }
    )
  const seen = new Set<string>()
  let sum = 0
  const out: AdapterProvenance['datanets'] = []
  list.forEach((e, i) => {
    const { id, version, bp } = (e ?? {}) as Record<string, unknown>
    if (!isDatanetId(id))
      throw new ProvenanceError(`provenance.datanets[${i}].id must be 0x + 64 lowercase hex chars`, {
        index: i
      })
    if (typeof version !== 'number' || !Number.isInteger(version) || version < 1 || version > 0xffffffff)
      throw new ProvenanceError(`provenance.datanets[${i}].version must be an integer in 1..2^32-1`, {
        index: i
      })
    if (typeof bp !== 'number' || !Number.isInteger(bp) || bp < 1 || bp > TOTAL_BP)
      throw new ProvenanceError(`provenance.datanets[${i}].bp must be an integer in 1..${TOTAL_BP}`, {
        index: i
      })
    if (seen.has(id)) throw new ProvenanceError(`provenance names datanet ${id} twice`, { id })
    seen.add(id)
    sum += bp
    out.push({ id, version, bp })
  })
  if (sum !== TOTAL_BP)
    throw new ProvenanceError(`provenance weights must sum to exactly ${TOTAL_BP} bp, got ${sum}`, { sum })
  out.sort((a, b) => (a.id < b.id ? -1 : 1))
  return { datanets: out }
}
