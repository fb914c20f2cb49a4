// A plain Bloom filter over adapter CIDs, so an advert can say "I hold these 10,000 adapters" in
// ~12 KiB. Indexes come from one SHA-256 of the CID string split into two 32-bit halves and
// combined by double hashing (Kirsch–Mitzenmacher), which is as good as k independent hashes
// for this use and costs a single digest per lookup.
import { sha256 } from '../../crypto/hash.ts'
import { BLOOM_FALSE_POSITIVE_RATE, MAX_BLOOM_HASHES } from './constants.ts'

export interface BloomFilter {
  /** number of bits (data.length * 8 >= bits) */
  bits: number
  /** number of hash functions */
  k: number
  data: Uint8Array
}

/** Sizes a filter for n items at rate p: m = -n ln p / (ln 2)^2, k = m/n ln 2. */
export function bloomSize(n: number, p = BLOOM_FALSE_POSITIVE_RATE): { bits: number; k: number } {
  const items = Math.max(1, n)
  const bits = Math.max(64, Math.ceil((-items * Math.log(p)) / (Math.LN2 * Math.LN2)))
  const k = Math.min(MAX_BLOOM_HASHES, Math.max(1, Math.round((bits / items) * Math.LN2)))
  return { bits, k }
}

function* indexes(item: string, bits: number, k: number): Generator<number> {
  const d = sha256(item)
  const view = new DataView(d.buffer, d.byteOffset, d.byteLength)
  const h1 = view.getUint32(0)
  // An odd h2 never cycles early when bits is a power of two.
  const h2 = view.getUint32(4) | 1
  for (let i = 0; i < k; i++) yield ((h1 + Math.imul(i, h2)) >>> 0) % bits
}

export function createBloom(
  items: Iterable<string>,
  count: number,
  p = BLOOM_FALSE_POSITIVE_RATE
): BloomFilter {
  const { bits, k } = bloomSize(count, p)
  const data = new Uint8Array(Math.ceil(bits / 8))
  for (const item of items) {
    for (const i of indexes(item, bits, k)) {
      data[i >>> 3]! |= 1 << (i & 7)
    }
  }
  return { bits, k, data }
}

export function bloomHas(filter: BloomFilter, item: string): boolean {
  for (const i of indexes(item, filter.bits, filter.k)) {
    if ((filter.data[i >>> 3]! & (1 << (i & 7))) === 0) return false
  }
  return true
}
