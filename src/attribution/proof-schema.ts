// The schema of an attribution proof that came from a file or a peer: shapes and sizes, checked
// before any hashing. AttributionProof and SpanProof are derived from it (types.ts re-exports).
import { hexBytes, z } from '../common/schema.ts'
import type { Hex } from '../crypto/hash.ts'
import {
  MAX_CONTRIBUTORS_PER_SPAN,
  MAX_MERKLE_DEPTH,
  MAX_OUTPUT_TOKENS,
  MAX_PROOF_SPANS,
  MAX_PROVENANCE_DATANETS,
  MAX_RECEIPT_CONTRIBUTORS,
  TOTAL_BP
} from './constants.ts'

const MAX_CHUNKS = 1 << 20
const MAX_CHUNK_CHARS = 1 << 20
const MAX_SPAN_CHUNKS = 256

const hash32 = hexBytes(32)
// proofs carry addresses lowercased, so one contributor has one spelling in every hash
const lowerAddress = z
  .string()
  .regex(/^0x[0-9a-f]{40}$/)
  .describe('a lowercase 0x address') as unknown as z.ZodType<Hex, string>
const version = z.int().min(1).max(0xffffffff)

export const ChunkRefSchema = z.strictObject({
  size: z
    .int()
    .min(1)
    .max(MAX_CHUNK_CHARS * 4),
  sha256: hash32
})

/** Proof that the output tokens [outputOffset, outputOffset + tokens.length) occur in a contribution. */
export const SpanProofSchema = z.strictObject({
  datanet: hash32,
  version,
  /** position of the span in the output token ids */
  outputOffset: z.int().min(0).max(MAX_OUTPUT_TOKENS),
  tokens: z.array(z.int().min(0).max(0x7fffffff)).min(1),
  contribution: z.strictObject({
    cid: z.string().max(128),
    contributor: lowerAddress,
    /** every chunk's size and sha256, in order: enough to recompute the contribution CID */
    chunks: z.array(ChunkRefSchema).min(1).max(MAX_CHUNKS)
  }),
  /** index of the first chunk carried in `text` */
  chunkIndex: z.int().min(0).max(MAX_CHUNKS),
  /** the carried chunks' text, consecutive from chunkIndex */
  text: z.array(z.string().max(MAX_CHUNK_CHARS)).min(1).max(MAX_SPAN_CHUNKS),
  /** token offset of the span within the concatenated tokens of the carried chunks */
  offset: z.int().min(0).max(0x7fffffff),
  /** sibling hashes from the contribution's leaf to the version root */
  merkle: z.array(hash32).max(MAX_MERKLE_DEPTH)
})
export type SpanProof = z.output<typeof SpanProofSchema>

export const AttributionProofSchema = z
  .strictObject({
    v: z.literal(1),
    method: z.enum(['spans', 'provenance']),
    outputHash: hash32,
    outputTokens: z.int().min(0).max(MAX_OUTPUT_TOKENS),
    minSpanTokens: z.int().min(1).max(4096),
    /** datanet versions consulted, with the roots the proof is against, and their weights */
    datanets: z
      .array(z.strictObject({ id: hash32, version, root: hash32, bp: z.int().min(0).max(TOTAL_BP) }))
      .min(1)
      .max(MAX_PROVENANCE_DATANETS),
    contributors: z
      .array(z.strictObject({ address: lowerAddress, bp: z.int().min(1).max(TOTAL_BP) }))
      .max(MAX_RECEIPT_CONTRIBUTORS * 64),
    spans: z.array(SpanProofSchema).max(MAX_PROOF_SPANS * MAX_CONTRIBUTORS_PER_SPAN)
  })
  .superRefine((p, ctx) => {
    if (p.method === 'provenance' && p.spans.length > 0)
      ctx.addIssue({ code: 'custom', path: ['spans'], message: 'a provenance proof carries no spans' })
    if (p.method === 'spans' && p.spans.length === 0)
      ctx.addIssue({ code: 'custom', path: ['spans'], message: 'a spans proof carries at least one span' })
    p.spans.forEach((s, i) => {
      if (s.outputOffset + s.tokens.length > p.outputTokens)
        ctx.addIssue({
          code: 'custom',
          path: ['spans', i, 'outputOffset'],
          message: `must place the span inside the ${p.outputTokens}-token output`
        })
    })
  })
export type AttributionProof = z.output<typeof AttributionProofSchema>
