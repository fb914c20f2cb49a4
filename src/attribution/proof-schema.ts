// Shape and size checks of an attribution proof that came from a file or a peer, before any
// hashing. Returns the first problem found as a sentence naming the field, or undefined.
import {
  MAX_CONTRIBUTORS_PER_SPAN,
  MAX_MERKLE_DEPTH,
  MAX_OUTPUT_TOKENS,
  MAX_PROOF_SPANS,
  MAX_PROVENANCE_DATANETS,
  MAX_RECEIPT_CONTRIBUTORS,
  TOTAL_BP
} from './constants.ts'

const HEX32 = /^0x[0-9a-f]{64}$/
const ADDRESS = /^0x[0-9a-f]{40}$/
const MAX_CHUNKS = 1 << 20
const MAX_CHUNK_CHARS = 1 << 20
const MAX_SPAN_CHUNKS = 256

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)
const isInt = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max

function onlyKeys(o: Record<string, unknown>, keys: string[], where: string): string | undefined {
  for (const k of Object.keys(o)) if (!keys.includes(k)) return `${where} has unknown field "${k}"`
  for (const k of keys) if (!(k in o)) return `${where} lacks field "${k}"`
  return undefined
}

export function checkProofSchema(p: unknown): string | undefined {
  if (!isObj(p)) return 'proof must be an object'
  const top = onlyKeys(
    p,
    ['v', 'method', 'outputHash', 'outputTokens', 'minSpanTokens', 'datanets', 'contributors', 'spans'],
    'proof'
  )
  if (top) return top
  if (p.v !== 1) return 'proof.v must be 1'
  if (p.method !== 'spans' && p.method !== 'provenance') return 'proof.method must be "spans" or "provenance"'
  if (typeof p.outputHash !== 'string' || !HEX32.test(p.outputHash))
    return 'proof.outputHash must be 0x + 64 hex'
  if (!isInt(p.outputTokens, 0, MAX_OUTPUT_TOKENS))
    return `proof.outputTokens must be an integer in 0..${MAX_OUTPUT_TOKENS}`
  if (!isInt(p.minSpanTokens, 1, 4096)) return 'proof.minSpanTokens must be an integer in 1..4096'
  if (!Array.isArray(p.datanets) || p.datanets.length < 1 || p.datanets.length > MAX_PROVENANCE_DATANETS)
    return `proof.datanets must list 1 to ${MAX_PROVENANCE_DATANETS} datanets`
  for (const [i, d] of p.datanets.entries()) {
    const w = `proof.datanets[${i}]`
    if (!isObj(d)) return `${w} must be an object`
    const e = onlyKeys(d, ['id', 'version', 'root', 'bp'], w)
    if (e) return e
    if (typeof d.id !== 'string' || !HEX32.test(d.id)) return `${w}.id must be 0x + 64 lowercase hex`
    if (typeof d.root !== 'string' || !HEX32.test(d.root)) return `${w}.root must be 0x + 64 lowercase hex`
    if (!isInt(d.version, 1, 0xffffffff)) return `${w}.version must be an integer in 1..2^32-1`
    if (!isInt(d.bp, 0, TOTAL_BP)) return `${w}.bp must be an integer in 0..${TOTAL_BP}`
  }
  if (!Array.isArray(p.contributors) || p.contributors.length > MAX_RECEIPT_CONTRIBUTORS * 64)
    return 'proof.contributors must be an array'
  for (const [i, c] of p.contributors.entries()) {
    const w = `proof.contributors[${i}]`
    if (!isObj(c)) return `${w} must be an object`
    const e = onlyKeys(c, ['address', 'bp'], w)
    if (e) return e
    if (typeof c.address !== 'string' || !ADDRESS.test(c.address))
      return `${w}.address must be a lowercase 0x address`
    if (!isInt(c.bp, 1, TOTAL_BP)) return `${w}.bp must be an integer in 1..${TOTAL_BP}`
  }
  if (!Array.isArray(p.spans) || p.spans.length > MAX_PROOF_SPANS * MAX_CONTRIBUTORS_PER_SPAN)
    return `proof.spans must be an array of at most ${MAX_PROOF_SPANS * MAX_CONTRIBUTORS_PER_SPAN}`
  if (p.method === 'provenance' && p.spans.length > 0) return 'a provenance proof carries no spans'
  if (p.method === 'spans' && p.spans.length === 0) return 'a spans proof carries at least one span'
  for (const [i, s] of p.spans.entries()) {
    const w = `proof.spans[${i}]`
    if (!isObj(s)) return `${w} must be an object`
    const e = onlyKeys(
      s,
      [
        'datanet',
        'version',
        'outputOffset',
        'tokens',
        'contribution',
        'chunkIndex',
        'text',
        'offset',
        'merkle'
      ],
      w
    )
    if (e) return e
    if (typeof s.datanet !== 'string' || !HEX32.test(s.datanet)) return `${w}.datanet must be 0x + 64 hex`
    if (!isInt(s.version, 1, 0xffffffff)) return `${w}.version must be an integer in 1..2^32-1`
    if (!Array.isArray(s.tokens) || s.tokens.length < 1 || !s.tokens.every((t) => isInt(t, 0, 0x7fffffff)))
      return `${w}.tokens must be a non-empty array of token ids`
    if (
      !isInt(s.outputOffset, 0, MAX_OUTPUT_TOKENS) ||
      (s.outputOffset as number) + s.tokens.length > (p.outputTokens as number)
    )
      return `${w}.outputOffset must place the span inside the ${p.outputTokens}-token output`
    if (!isObj(s.contribution)) return `${w}.contribution must be an object`
    const c = s.contribution
    const ce = onlyKeys(c, ['cid', 'contributor', 'chunks'], `${w}.contribution`)
    if (ce) return ce
    if (typeof c.cid !== 'string' || c.cid.length > 128) return `${w}.contribution.cid must be a CID string`
    if (typeof c.contributor !== 'string' || !ADDRESS.test(c.contributor))
      return `${w}.contribution.contributor must be a lowercase 0x address`
    if (!Array.isArray(c.chunks) || c.chunks.length < 1 || c.chunks.length > MAX_CHUNKS)
      return `${w}.contribution.chunks must list 1 to ${MAX_CHUNKS} chunks`
    for (const r of c.chunks)
      if (
        !isObj(r) ||
        !isInt(r.size, 1, MAX_CHUNK_CHARS * 4) ||
        typeof r.sha256 !== 'string' ||
        !HEX32.test(r.sha256)
      )
        return `${w}.contribution.chunks entries must be { size, sha256 }`
    if (!isInt(s.chunkIndex, 0, MAX_CHUNKS)) return `${w}.chunkIndex must be a chunk index`
    if (!Array.isArray(s.text) || s.text.length < 1 || s.text.length > MAX_SPAN_CHUNKS)
      return `${w}.text must carry 1 to ${MAX_SPAN_CHUNKS} chunks`
    if (!s.text.every((t) => typeof t === 'string' && t.length <= MAX_CHUNK_CHARS))
      return `${w}.text must be strings`
    if (!isInt(s.offset, 0, 0x7fffffff)) return `${w}.offset must be a non-negative integer`
    if (
      !Array.isArray(s.merkle) ||
      s.merkle.length > MAX_MERKLE_DEPTH ||
      !s.merkle.every((h) => typeof h === 'string' && HEX32.test(h))
    )
      return `${w}.merkle must be at most ${MAX_MERKLE_DEPTH} hashes of 0x + 64 hex`
  }
  return undefined
}
