// Suffix array construction by induced sorting (SA-IS, Nong, Zhang & Chan 2009): linear time and
// a few integer arrays of the corpus length, so a 10M-token datanet version indexes in seconds
// in plain JS. The input is an integer string over [0, alphabetSize) whose last symbol is a
// unique 0 (the sentinel); the caller remaps token ids to dense ranks first.

/**
 * Returns SA with SA[i] = start of the i-th smallest suffix of `s` (including the sentinel
 * suffix at SA[0]). `s` must end with a unique 0 and every other symbol must be in [1, k).
 */
export function buildSuffixArray(s: Int32Array, k: number): Int32Array {
  const sa = new Int32Array(s.length)
  sais(s, sa, s.length, k)
  return sa
}

function getBuckets(s: Int32Array, n: number, k: number, end: boolean): Int32Array {
  const bkt = new Int32Array(k)
  for (let i = 0; i < n; i++) bkt[s[i]!]!++
  let sum = 0
  for (let i = 0; i < k; i++) {
    sum += bkt[i]!
    bkt[i] = end ? sum : sum - bkt[i]!
  }
  return bkt
}

function sais(s: Int32Array, sa: Int32Array, n: number, k: number): void {
  if (n === 1) {
    sa[0] = 0
    return
  }
  // t[i] = 1 when suffix i is S-type (smaller than suffix i+1), 0 when L-type.
  const t = new Uint8Array(n)
  t[n - 1] = 1
  for (let i = n - 2; i >= 0; i--) t[i] = s[i]! < s[i + 1]! || (s[i] === s[i + 1] && t[i + 1] === 1) ? 1 : 0
  const isLms = (i: number): boolean => i > 0 && t[i] === 1 && t[i - 1] === 0

  // Step 1: place LMS suffixes at the ends of their buckets and induce an approximate order.
  let bkt = getBuckets(s, n, k, true)
  sa.fill(-1)
  for (let i = 1; i < n; i++) if (isLms(i)) sa[--bkt[s[i]!]!] = i
  induce(s, sa, t, n, k)

  // Step 2: compact the sorted LMS substrings and name them; equal names mean equal substrings.
  let m = 0
  for (let i = 0; i < n; i++) if (isLms(sa[i]!)) sa[m++] = sa[i]!
  sa.fill(-1, m)
  let name = 0
  let prev = -1
  for (let i = 0; i < m; i++) {
    const pos = sa[i]!
    let diff = false
    if (prev < 0) diff = true
    else {
      for (let d = 0; ; d++) {
        if (s[pos + d] !== s[prev + d] || t[pos + d] !== t[prev + d]) {
          diff = true
          break
        }
        if (d > 0 && (isLms(pos + d) || isLms(prev + d))) break
      }
    }
    if (diff) {
      name++
      prev = pos
    }
    sa[m + (pos >> 1)] = name - 1
  }
  // Gather the names in text order into the tail of sa: that is the reduced string.
  let j = n - 1
  for (let i = n - 1; i >= m; i--) if (sa[i]! >= 0) sa[j--] = sa[i]!

  // Step 3: sort the reduced string, recursing only when names repeat.
  const s1 = sa.subarray(n - m, n)
  const sa1 = sa.subarray(0, m)
  if (name < m) {
    const s1copy = Int32Array.from(s1)
    const sa1out = new Int32Array(m)
    sais(s1copy, sa1out, m, name)
    sa1.set(sa1out)
  } else {
    for (let i = 0; i < m; i++) sa1[s1[i]!] = i
  }

  // Step 4: map reduced ranks back to LMS positions and induce the final order.
  j = 0
  const lmsPos = new Int32Array(m)
  for (let i = 1; i < n; i++) if (isLms(i)) lmsPos[j++] = i
  for (let i = 0; i < m; i++) sa1[i] = lmsPos[sa1[i]!]!
  sa.fill(-1, m)
  bkt = getBuckets(s, n, k, true)
  for (let i = m - 1; i >= 0; i--) {
    const p = sa[i]!
    sa[i] = -1
    sa[--bkt[s[p]!]!] = p
  }
  induce(s, sa, t, n, k)
}

function induce(s: Int32Array, sa: Int32Array, t: Uint8Array, n: number, k: number): void {
  let bkt = getBuckets(s, n, k, false)
  for (let i = 0; i < n; i++) {
    const j = sa[i]! - 1
    if (j >= 0 && t[j] === 0) sa[bkt[s[j]!]!++] = j
  }
  bkt = getBuckets(s, n, k, true)
  for (let i = n - 1; i >= 0; i--) {
    const j = sa[i]! - 1
    if (j >= 0 && t[j] === 1) sa[--bkt[s[j]!]!] = j
  }
}
