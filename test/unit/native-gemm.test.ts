// The prompt chunks' fp32 GEMM (kernels.h gemmF32) against a plain sum, on shapes the model tests
// do not all reach: k in several blocks of 128 with a short last one, a thread's column range
// that ends in a masked 64-column strip (its sums reloaded from y at every block after the
// first) or in a strip of 32 or fewer (gemmAcross), ranges that start past column 0, every
// remainder of 1-5 rows after the 6-row passes, and weights read from their bf16 halves. The
// engine's prompt tests compare whole models with ORT; a strip or block handled wrongly here
// shows up there only where a model's widths happen to produce it.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { compileNative } from '../../src/runtime/native/compile.ts'
import { loadNativeAddon } from '../../src/runtime/native/decoder.ts'

const addon = loadNativeAddon(await compileNative())
const SIMD = addon.info().simd

/** deterministic values in [-1, 1), rounded to bf16 when `bf16` (their low 16 bits zero) */
function values(n: number, seed: number, bf16: boolean): Float32Array {
  const out = new Float32Array(n)
  const bits = new Uint32Array(out.buffer)
  let s = seed >>> 0
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    out[i] = (s / 2 ** 32) * 2 - 1
    if (bf16) bits[i]! &= 0xffff0000
  }
  return out
}

const SENTINEL = 1234.5

function check(M: number, K: number, N: number, j0: number, j1: number, halves: boolean) {
  const x = values(M * K, M * 7 + K, false)
  const w = values(K * N, K * 13 + N, halves)
  const y = new Float32Array(M * N).fill(SENTINEL)
  addon.gemmF32(x, w, M, K, N, j0, j1, y, halves)
  const what = `M ${M}, K ${K}, N ${N}, columns [${j0}, ${j1})${halves ? ', bf16 halves' : ''}`
  for (let m = 0; m < M; m++)
    for (let j = 0; j < N; j++) {
      const got = y[m * N + j]!
      if (j < j0 || j >= j1) {
        if (got !== SENTINEL)
          assert.unreachable(`${what}: y[${m}][${j}] outside the range was written (${got})`)
        continue
      }
      let sum = 0
      let size = 0
      for (let k = 0; k < K; k++) {
        const t = x[m * K + k]! * w[k * N + j]!
        sum += t
        size += Math.abs(t)
      }
      // fp32 sums in k order against a float64 one: within a few ulps of the terms' magnitude
      if (!(Math.abs(got - sum) <= 1e-5 * size + 1e-6))
        assert.unreachable(`${what}: y[${m}][${j}] = ${got}, the plain sum is ${sum}`)
    }
}

if (SIMD === 'avx512vnni') {
  test('gemmF32 equals a plain sum: k blocks, masked and short strips, column offsets, row remainders', () => {
    // 200 = a block of 128 and one of 72; 576 = 4.5 blocks (the 135M shape's K)
    for (const K of [64, 200, 576])
      for (const [N, j0, j1] of [
        [176, 0, 176], // two full strips and one of 48 columns, masked
        [240, 16, 128], // an offset start, a full strip and a masked one of 48
        [160, 0, 96], // a full strip and 32 columns (gemmAcross)
        [64, 0, 24] // only a short strip
      ] as const)
        for (const M of [4, 5, 6, 7, 11, 13, 17, 37]) check(M, K, N, j0, j1, false)
  })

  test('gemmF32 from bf16 halves equals a plain sum, masked strips included', () => {
    for (const [M, K] of [
      [7, 200],
      [13, 576],
      [40, 300]
    ] as const)
      for (const [N, j0, j1] of [
        [176, 0, 176],
        [240, 16, 128]
      ] as const)
        check(M, K, N, j0, j1, true)
  })

  test('gemmF32 refuses arguments it cannot run, saying what is allowed', () => {
    const x = new Float32Array(4 * 8)
    const w = new Float32Array(8 * 16)
    const y = new Float32Array(4 * 16)
    assert.throws(() => addon.gemmF32(x, w, 4, 8, 16, 8, 8, y, false), /0 ≤ j0 < j1 ≤ N/)
    assert.throws(() => addon.gemmF32(x, w, 4, 8, 16, 0, 16, new Float32Array(3), false), /y .* too short/)
    w[3] = 1.1 // not a bf16 value
    assert.throws(() => addon.gemmF32(x, w, 4, 8, 16, 0, 16, y, true), /bf16 values/)
  })
} else {
  test('gemmF32 says it needs the AVX-512 kernels where the build has none', () => {
    const f = new Float32Array(16)
    assert.throws(() => addon.gemmF32(f, f, 1, 4, 4, 0, 4, f, false), /no AVX-512 kernels/)
  })
}

test.run()
