// Attribution of one output: the maximal spans it shares with the adapter's datanets, who
// contributed them, a proof per credited span, and the summary a receipt carries.
import { type Logger, silentLogger } from '../common/log.ts'
import { encodeCanonical } from '../crypto/cbor.ts'
import { type Hex, hashTokenIds, sha256Hex } from '../crypto/hash.ts'
import {
  DEFAULT_MIN_SPAN_TOKENS,
  MAX_CONTRIBUTORS_PER_SPAN,
  MAX_OCCURRENCES_SCANNED,
  MAX_OUTPUT_TOKENS,
  MAX_RECEIPT_CONTRIBUTORS
} from './constants.ts'
import { topWeights, weightsFromSpans } from './credit.ts'
import type { ContributionRecord, DatanetStore } from './datanet-store.ts'
import { AttributionError, DatanetError } from './errors.ts'
import type { MerkleTree } from './merkle.ts'
import { validateProvenance } from './provenance.ts'
import type { SpanIndex } from './span-index.ts'
import type { AdapterProvenance, AttributionProof, AttributionSummary, SpanProof } from './types.ts'
import { toBasisPoints } from './weights.ts'

export interface AttributorInit {
  /** shortest span that counts (tokens) */
  minSpanTokens?: number
}

export interface AttributorComponents {
  store: Pick<DatanetStore, 'versionContents' | 'readChunkText'>
  indexes: { get(datanetId: string, version: number): Promise<SpanIndex> }
  logger?: Logger
}

export interface AttributionResult {
  summary: AttributionSummary
  proof: AttributionProof
}

/** sha256 of the canonical CBOR of the proof: the `proofHash` of the summary. */
export function proofHash(proof: AttributionProof): Hex {
  return sha256Hex(encodeCanonical(proof))
}

/** attributionHash = sha256(encodeCanonical(attribution)), as the EIP-712 receipt signs it. */
export function attributionHash(summary: AttributionSummary): Hex {
  return sha256Hex(encodeCanonical(summary))
}

export function summarise(proof: AttributionProof): AttributionSummary {
  return {
    method: proof.method,
    datanets: proof.datanets.filter((d) => d.bp > 0).map((d) => ({ id: d.id, bp: d.bp })),
    contributors: proof.contributors.map((c) => ({ address: c.address, bp: c.bp })),
    proofHash: proofHash(proof)
  }
}

function checkOutput(ids: unknown): readonly number[] {
  if (!Array.isArray(ids) || ids.length > MAX_OUTPUT_TOKENS)
    throw new AttributionError(
      'ATTRIBUTION_INPUT_INVALID',
      `output must be an array of at most ${MAX_OUTPUT_TOKENS} token ids`
    )
  for (const t of ids)
    if (!Number.isInteger(t) || t < 0 || t >= 0x80000000)
      throw new AttributionError(
        'ATTRIBUTION_INPUT_INVALID',
        `output token ids must be integers in 0..2^31-1, got ${t}`
      )
  return ids
}

interface VersionData {
  index: SpanIndex
  contributions: ContributionRecord[]
  tree: MerkleTree
  /** tokens per contributor in this version, for provenance attribution */
  tokensByContributor: Map<Hex, bigint>
}

function tokensByContributor(index: SpanIndex): Map<Hex, bigint> {
  const m = new Map<Hex, bigint>()
  for (let d = 0; d < index.docCount; d++) {
    const c = index.header.docs[d]!.contributor
    m.set(c, (m.get(c) ?? 0n) + BigInt(index.docTokens(d)))
  }
  return m
}

export class Attributor {
  readonly minSpanTokens: number
  private readonly store: AttributorComponents['store']
  private readonly indexes: AttributorComponents['indexes']
  private readonly log: Logger
  private readonly versions = new Map<string, Promise<VersionData>>()

  constructor(components: AttributorComponents, init: AttributorInit = {}) {
    this.store = components.store
    this.indexes = components.indexes
    this.log = components.logger ?? silentLogger
    this.minSpanTokens = init.minSpanTokens ?? DEFAULT_MIN_SPAN_TOKENS
    if (!Number.isInteger(this.minSpanTokens) || this.minSpanTokens < 1 || this.minSpanTokens > 4096)
      throw new AttributionError('ATTRIBUTION_INPUT_INVALID', 'minSpanTokens must be an integer in 1..4096')
  }

  private version(datanetId: Hex, version: number): Promise<VersionData> {
    const key = `${datanetId}@${version}`
    let p = this.versions.get(key)
    if (!p) {
      p = (async () => {
        const [index, contents] = await Promise.all([
          this.indexes.get(datanetId, version),
          this.store.versionContents(datanetId, version)
        ])
        if (index.header.root !== contents.version.root)
          throw new DatanetError(
            'INDEX_INVALID',
            `span index of ${datanetId} v${version} is for another root`
          )
        return {
          index,
          contributions: contents.contributions,
          tree: contents.tree,
          tokensByContributor: tokensByContributor(index)
        }
      })()
      this.versions.set(key, p)
      p.catch(() => this.versions.delete(key))
    }
    return p
  }

  /** Attributes output token ids to the adapter's datanets; deterministic for a given output. */
  async attribute(outputIds: readonly number[], provenanceIn: AdapterProvenance): Promise<AttributionResult> {
    const out = checkOutput(outputIds)
    const provenance = validateProvenance(provenanceIn)
    const spans: SpanProof[] = []
    const consulted: { id: Hex; version: number; root: Hex; data: VersionData }[] = []
    for (const d of provenance.datanets) {
      const data = await this.version(d.id, d.version)
      consulted.push({ id: d.id, version: d.version, root: data.tree.root, data })
      for (const s of data.index.findSpans(out, this.minSpanTokens))
        spans.push(
          ...(await this.proveSpan(d.id, d.version, data, out, s.outputOffset, s.length, s.lo, s.hi))
        )
    }
    let proof: AttributionProof
    const base = {
      v: 1 as const,
      outputHash: hashTokenIds(out),
      outputTokens: out.length,
      minSpanTokens: this.minSpanTokens
    }
    if (spans.length > 0) {
      const w = weightsFromSpans(spans)
      const bp = new Map(w.datanets.map((d) => [d.id, d.bp]))
      proof = {
        ...base,
        method: 'spans',
        datanets: consulted.map((c) => ({
          id: c.id,
          version: c.version,
          root: c.root,
          bp: bp.get(c.id) ?? 0
        })),
        contributors: w.contributors,
        spans
      }
    } else {
      proof = {
        ...base,
        method: 'provenance',
        datanets: consulted.map((c, i) => ({
          id: c.id,
          version: c.version,
          root: c.root,
          bp: provenance.datanets[i]!.bp
        })),
        contributors: provenanceContributors(
          consulted.map((c, i) => ({
            bp: provenance.datanets[i]!.bp,
            n: c.data.index.n,
            tokens: c.data.tokensByContributor
          }))
        ),
        spans: []
      }
    }
    const summary = summarise(proof)
    this.log.debug('output attributed', {
      method: proof.method,
      spans: spans.length,
      contributors: proof.contributors.length,
      proofHash: summary.proofHash
    })
    return { summary, proof }
  }

  /** One proof per credited contributor: the earliest occurrence of the span in that contributor's data. */
  private async proveSpan(
    datanet: Hex,
    version: number,
    data: VersionData,
    out: readonly number[],
    outputOffset: number,
    length: number,
    lo: number,
    hi: number
  ): Promise<SpanProof[]> {
    const { index, contributions, tree } = data
    const picked = new Map<Hex, number>()
    for (const pos of index.occurrences(lo, hi, MAX_OCCURRENCES_SCANNED)) {
      const c = index.header.docs[index.locate(pos).doc]!.contributor
      if (!picked.has(c)) picked.set(c, pos)
      if (picked.size >= MAX_CONTRIBUTORS_PER_SPAN) break
    }
    const proofs: SpanProof[] = []
    for (const pos of [...picked.values()].sort((a, b) => a - b)) {
      const first = index.locate(pos)
      const last = index.locate(pos + length - 1)
      const rec = contributions[first.doc]!
      if (rec.cid !== index.header.docs[first.doc]!.cid)
        throw new DatanetError(
          'INDEX_INVALID',
          `span index of ${datanet} v${version} disagrees with the store`
        )
      const text: string[] = []
      for (let c = first.chunk; c <= last.chunk; c++)
        text.push(await this.store.readChunkText(rec.chunks[c]!))
      proofs.push({
        datanet,
        version,
        outputOffset,
        tokens: out.slice(outputOffset, outputOffset + length),
        contribution: { cid: rec.cid, contributor: rec.contributor, chunks: rec.chunks },
        chunkIndex: first.chunk,
        text,
        offset: first.offsetInChunk,
        merkle: tree.proof(rec.leaf)
      })
    }
    return proofs
  }
}

/**
 * Provenance attribution: each datanet's bp is shared among its contributors in proportion to
 * their tokens in that version; exact in BigInt, the top MAX_RECEIPT_CONTRIBUTORS by weight kept.
 */
function provenanceContributors(
  list: { bp: number; n: number; tokens: Map<Hex, bigint> }[]
): { address: Hex; bp: number }[] {
  const totals = list.map((d) => BigInt(d.n))
  const weights = new Map<Hex, bigint>()
  list.forEach((d, i) => {
    if (totals[i] === 0n) return
    // bp_i × tokens / total_i, over the common denominator Π totals.
    let scale = BigInt(d.bp)
    totals.forEach((t, j) => {
      if (j !== i && t > 0n) scale *= t
    })
    for (const [c, t] of d.tokens) weights.set(c, (weights.get(c) ?? 0n) + scale * t)
  })
  return toBasisPoints(topWeights(weights, MAX_RECEIPT_CONTRIBUTORS)).map((r) => ({
    address: r.key as Hex,
    bp: r.bp
  }))
}
