// The KV cache's layout follows the longest live sequence (src/runtime/model/kv-layout.ts): it
// grows while rows decode and shrinks when long rows end, moving cached positions in place. Rows
// decoding across those moves must keep exactly the reference forward pass's logits.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { loadModel } from '../../src/runtime/model/index.ts'
import { MIN_KV_CAPACITY, nextKvCapacity, relayoutKv } from '../../src/runtime/model/kv-layout.ts'
import { loadReference, referenceForward } from '../reference/forward.ts'

const root = mkdtempSync(join(tmpdir(), 'openlora-kv-layout-'))
const TOL = 1e-4

test('capacity grows to fit, stays within maxSeqLen and shrinks only when far below', () => {
  assert.is(nextKvCapacity(0, 0, 2048), MIN_KV_CAPACITY)
  assert.is(nextKvCapacity(0, 0, 16), 16)
  assert.is(nextKvCapacity(65, 64, 2048), 128)
  assert.is(nextKvCapacity(300, 64, 200), 200)
  assert.is(nextKvCapacity(100, 128, 2048), 128)
  assert.is(nextKvCapacity(40, 128, 2048), 128)
  assert.is(nextKvCapacity(40, 256, 2048), 128)
  assert.is(nextKvCapacity(0, 1024, 2048), 128)
})

test('relayout keeps every block’s first positions when growing and shrinking', () => {
  const blocks = 5
  const D = 3
  const fill = (cap: number, len: number) => {
    const b = new Float32Array(blocks * 16 * D).fill(-1)
    for (let k = 0; k < blocks; k++) for (let p = 0; p < len * D; p++) b[k * cap * D + p] = k * 1000 + p
    return b
  }
  const check = (buf: Float32Array, cap: number, len: number) => {
    for (let k = 0; k < blocks; k++)
      for (let p = 0; p < len * D; p++) assert.is(buf[k * cap * D + p], k * 1000 + p, `block ${k} float ${p}`)
  }
  const buf = fill(4, 3)
  relayoutKv([buf], blocks, 4, 16, D)
  check(buf, 16, 3)
  relayoutKv([buf], blocks, 16, 8, D)
  check(buf, 8, 3)
})

test('rows decoding across cache growth and shrink match the reference forward pass', async () => {
  const dir = join(root, 'tiny')
  await makeModel({ out: dir, preset: 'tiny', seed: 9 })
  const ref = await loadReference(dir)
  const V = ref.config.vocabSize
  const ids = (len: number, salt: number) => Array.from({ length: len }, (_, i) => (i * 37 + salt) % V)
  const long = ids(150, 11)
  const short = ids(40, 5)
  const wantLong = referenceForward(ref, long)
  const wantShort = referenceForward(ref, short)
  const model = await loadModel(dir, {
    cacheDir: join(root, 'cache'),
    maxBatch: 3,
    maxSeqLen: 400,
    pool: { slots: 2, maxRank: 4, targets: ['q_proj'] }
  })
  const diff = (a: Float32Array, b: Float32Array) => {
    let m = 0
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
    return m
  }
  try {
    // a row in slot 0 that never decodes keeps its cache through every move (row 0 moves least)
    model.allocSequence()
    const a = model.allocSequence()
    const b = model.allocSequence()
    let out = await model.step([{ seq: a, tokens: long.slice(0, 20), slot: 0 }])
    assert.ok(diff(out[0]!, wantLong[19]!) <= TOL)
    // a grows past 64 and 128 (cache 64 → 128 → 256) while b starts and decodes beside it
    for (let t = 20; t < long.length; t++) {
      const rows = [{ seq: a, tokens: [long[t]!], slot: 0 }]
      const bt = t - 120
      if (bt === 0) rows.push({ seq: b, tokens: short.slice(0, 10), slot: 0 })
      else if (bt > 0 && bt < 30) rows.push({ seq: b, tokens: [short[9 + bt]!], slot: 0 })
      out = await model.step(rows)
      assert.ok(diff(out[0]!, wantLong[t]!) <= TOL, `long row at ${t}: ${diff(out[0]!, wantLong[t]!)}`)
      if (bt >= 0 && bt < 30) {
        const pos = bt === 0 ? 9 : 9 + bt
        assert.ok(diff(out[1]!, wantShort[pos]!) <= TOL, `short row at ${pos}`)
      }
    }
    // the long row ends: the cache shrinks (256 → 128) and b goes on from its moved cache
    model.freeSequence(a)
    for (let k = 39; k < short.length; k++) {
      out = await model.step([{ seq: b, tokens: [short[k]!], slot: 0 }])
      assert.ok(diff(out[0]!, wantShort[k]!) <= TOL, `short row at ${k} after shrink`)
    }
    assert.is((model as unknown as { kvCapacity: number }).kvCapacity, 128)
  } finally {
    await model.dispose()
    rmSync(root, { recursive: true, force: true })
  }
})

test.run()
