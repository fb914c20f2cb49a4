// Integer weights → basis points summing to exactly 10,000, by the largest-remainder method.
// Everything is BigInt so the result is exact and identical on every machine: each item gets
// floor(10000·w/W), and the bp still missing go one each to the largest remainders, ties broken
// by the item's key in ascending code-unit order. Items that round to 0 bp are dropped.
import { TOTAL_BP } from './constants.ts'

export interface Weighted {
  key: string
  weight: bigint
}

export function toBasisPoints(items: readonly Weighted[], total = TOTAL_BP): { key: string; bp: number }[] {
  const live = items.filter((i) => i.weight > 0n)
  if (live.length === 0) return []
  const keys = new Set<string>()
  for (const i of live) {
    if (keys.has(i.key)) throw new TypeError(`duplicate weight key ${i.key}`)
    keys.add(i.key)
  }
  const sum = live.reduce((a, i) => a + i.weight, 0n)
  const T = BigInt(total)
  const rows = live.map((i) => ({ key: i.key, bp: (i.weight * T) / sum, rem: (i.weight * T) % sum }))
  let missing = T - rows.reduce((a, r) => a + r.bp, 0n)
  const order = [...rows].sort((a, b) =>
    a.rem !== b.rem ? (a.rem > b.rem ? -1 : 1) : a.key < b.key ? -1 : a.key > b.key ? 1 : 0
  )
  for (const r of order) {
    if (missing === 0n) break
    r.bp += 1n
    missing -= 1n
  }
  return rows
    .filter((r) => r.bp > 0n)
    .map((r) => ({ key: r.key, bp: Number(r.bp) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
}
