// Offline verification of an attribution proof: no index, no model. Each span proof is checked
// against the published version roots: the carried chunk texts hash to the contribution's
// manifest entries, the manifest gives the contribution CID, and (CID, contributor) with the
// Merkle path reaches the root. With the tokenizer, the span's token ids must be the carried
// chunks' tokens at the claimed offset; with the output ids, they must be the output's tokens at
// outputOffset. The weights are recomputed from the spans. Every failure names its check.

import { parseWith, SchemaError } from '../common/schema.ts'
import { encodeCanonical } from '../crypto/cbor.ts'
import { type Hex, hashTokenIds, sha256, toHex } from '../crypto/hash.ts'
import { summarise } from './attribute.ts'
import { contributionCid } from './chunking.ts'
import { MAX_CONTRIBUTORS_PER_SPAN, TOTAL_BP } from './constants.ts'
import { spanKey, weightsFromSpans } from './credit.ts'
import { contributionLeaf, processMerkleProof } from './merkle.ts'
import { AttributionProofSchema } from './proof-schema.ts'
import type { AttributionProof, AttributionSummary, TextEncoder, VersionRoot } from './types.ts'

export type VerifyCheck =
  | 'schema'
  | 'output'
  | 'root'
  | 'chunk'
  | 'cid'
  | 'merkle'
  | 'offset'
  | 'tokens'
  | 'weights'
  | 'summary'

export interface VerifyFailure {
  check: VerifyCheck
  /** index of the span proof that failed, when the failure is about one */
  span?: number
  message: string
}

export interface VerifyOptions {
  /** re-tokenizes the carried chunks to check span tokens and offsets */
  tokenizer?: TextEncoder
  /** the job's output ids: checks the output hash and each span's place in the output */
  outputIds?: readonly number[]
  /** the receipt's attribution summary: must be the one this proof gives */
  summary?: AttributionSummary
}

export interface VerifyResult {
  ok: boolean
  failures: VerifyFailure[]
  /** what could be checked: tokens need a tokenizer, output positions need the output ids */
  checked: { spans: number; tokens: boolean; output: boolean }
}

const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'))

function indexOfRun(hay: readonly number[], needle: readonly number[]): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer
    return i
  }
  return -1
}

export function verifyAttribution(
  proofIn: unknown,
  roots: readonly VersionRoot[],
  optsOrTokenizer: VerifyOptions | TextEncoder = {}
): VerifyResult {
  const opts: VerifyOptions =
    typeof (optsOrTokenizer as TextEncoder).encode === 'function'
      ? { tokenizer: optsOrTokenizer as TextEncoder }
      : (optsOrTokenizer as VerifyOptions)
  const failures: VerifyFailure[] = []
  const fail = (check: VerifyCheck, message: string, span?: number): void => {
    failures.push(span === undefined ? { check, message } : { check, span, message })
  }
  const checked = { spans: 0, tokens: opts.tokenizer !== undefined, output: opts.outputIds !== undefined }
  let proof: AttributionProof
  try {
    proof = parseWith(AttributionProofSchema, proofIn, { at: 'proof' })
  } catch (err) {
    if (!(err instanceof SchemaError)) throw err
    fail('schema', err.message)
    return { ok: false, failures, checked }
  }

  if (opts.outputIds) {
    if (opts.outputIds.length !== proof.outputTokens || hashTokenIds(opts.outputIds) !== proof.outputHash)
      fail('output', `the output ids do not hash to the proof's outputHash ${proof.outputHash}`)
  }

  const trusted = new Map(
    roots.map((r) => [`${r.datanetId.toLowerCase()}@${r.version}`, r.root.toLowerCase()])
  )
  const rootOf = new Map<string, Hex>()
  for (const d of proof.datanets) {
    const key = `${d.id}@${d.version}`
    const t = trusted.get(key)
    if (t === undefined) fail('root', `no trusted root for datanet ${d.id} version ${d.version}`)
    else if (t !== d.root)
      fail(
        'root',
        `proof is against root ${d.root} but the published root of datanet ${d.id} v${d.version} is ${t}`
      )
    rootOf.set(key, (t ?? d.root) as Hex)
  }

  for (const [i, s] of proof.spans.entries()) {
    checked.spans++
    const root = rootOf.get(`${s.datanet}@${s.version}`)
    if (!root) {
      fail('schema', `span cites datanet ${s.datanet} v${s.version}, which the proof does not list`, i)
      continue
    }
    const manifest = s.contribution.chunks
    if (s.chunkIndex + s.text.length > manifest.length) {
      fail(
        'chunk',
        `carries chunks ${s.chunkIndex}..${s.chunkIndex + s.text.length - 1} but the contribution has ${manifest.length}`,
        i
      )
      continue
    }
    let chunksOk = true
    s.text.forEach((t, k) => {
      const ref = manifest[s.chunkIndex + k]!
      const bytes = utf8(t)
      if (bytes.length !== ref.size || toHex(sha256(bytes)) !== ref.sha256) {
        chunksOk = false
        fail('chunk', `chunk ${s.chunkIndex + k} does not hash to its manifest entry ${ref.sha256}`, i)
      }
    })
    if (contributionCid(manifest) !== s.contribution.cid)
      fail('cid', `the chunk manifest does not give contribution CID ${s.contribution.cid}`, i)
    else {
      const reached = processMerkleProof(
        contributionLeaf(s.contribution.cid, s.contribution.contributor),
        s.merkle
      )
      if (reached !== root)
        fail(
          'merkle',
          `the Merkle path of contribution ${s.contribution.cid} by ${s.contribution.contributor} reaches ${reached}, not root ${root}`,
          i
        )
    }
    if (opts.outputIds) {
      const at = opts.outputIds.slice(s.outputOffset, s.outputOffset + s.tokens.length)
      if (at.length !== s.tokens.length || at.some((t, j) => t !== s.tokens[j]))
        fail('output', `span tokens are not the output's tokens at outputOffset ${s.outputOffset}`, i)
    }
    if (opts.tokenizer && chunksOk) {
      const toks: number[] = []
      const chunkLens: number[] = []
      for (const t of s.text) {
        const e = opts.tokenizer.encode(t)
        chunkLens.push(e.length)
        toks.push(...e)
      }
      const end = s.offset + s.tokens.length
      if (
        s.offset >= (chunkLens[0] ?? 0) ||
        end > toks.length ||
        end <= toks.length - chunkLens[chunkLens.length - 1]!
      ) {
        fail(
          'offset',
          `offset ${s.offset} + ${s.tokens.length} tokens does not start in the first and end in the last carried chunk (${toks.length} tokens)`,
          i
        )
        continue
      }
      const j = s.tokens.findIndex((t, k) => toks[s.offset + k] !== t)
      if (j >= 0) {
        const elsewhere = indexOfRun(toks, s.tokens)
        if (elsewhere >= 0)
          fail(
            'offset',
            `the span's tokens are at offset ${elsewhere} of the carried chunks, not at ${s.offset}`,
            i
          )
        else
          fail(
            'tokens',
            `span token ${j} is ${s.tokens[j]} but the contribution has ${toks[s.offset + j]} at offset ${s.offset + j}`,
            i
          )
      }
    }
  }

  if (proof.method === 'spans') {
    const w = weightsFromSpans(proof.spans)
    const got = proof.datanets
      .filter((d) => d.bp > 0)
      .map((d) => `${d.id}:${d.bp}`)
      .sort()
      .join()
    if (got !== w.datanets.map((d) => `${d.id}:${d.bp}`).join())
      fail('weights', 'datanet weights are not those the spans give')
    if (
      proof.contributors.map((c) => `${c.address}:${c.bp}`).join() !==
      w.contributors.map((c) => `${c.address}:${c.bp}`).join()
    )
      fail('weights', 'contributor weights are not those the spans give')
    const perSpan = new Map<string, Set<string>>()
    for (const s of proof.spans) {
      const k = spanKey(s)
      perSpan.set(k, (perSpan.get(k) ?? new Set()).add(s.contribution.contributor))
      if (s.tokens.length < proof.minSpanTokens)
        fail(
          'weights',
          `a span of ${s.tokens.length} tokens is shorter than minSpanTokens ${proof.minSpanTokens}`
        )
    }
    for (const [k, set] of perSpan)
      if (set.size > MAX_CONTRIBUTORS_PER_SPAN)
        fail('weights', `span ${k} credits more than ${MAX_CONTRIBUTORS_PER_SPAN} contributors`)
  } else {
    const sum = proof.datanets.reduce((a, d) => a + d.bp, 0)
    if (sum !== TOTAL_BP) fail('weights', `provenance datanet weights sum to ${sum}, not ${TOTAL_BP}`)
  }
  const csum = proof.contributors.reduce((a, c) => a + c.bp, 0)
  if (proof.contributors.length > 0 && csum !== TOTAL_BP)
    fail('weights', `contributor weights sum to ${csum}, not ${TOTAL_BP}`)

  if (opts.summary) {
    const mine = summarise(proof)
    if (toHex(encodeCanonical(mine)) !== toHex(encodeCanonical(opts.summary)))
      fail('summary', `the receipt's attribution summary is not this proof's (proofHash ${mine.proofHash})`)
  }
  return { ok: failures.length === 0, failures, checked }
}
