// The GGUF container: fp16 conversion, writer → bounded reader round trips, ggml's Q8_0 / Q4_0
// blocks, and what the reader refuses. The HF/PEFT → GGUF mapping is gguf-export.test.ts; that
// llama.cpp loads these files and computes our tokens is test/e2e/llamacpp.test.ts.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { f16BitsToF32, f32ToF16Bits } from '../../src/runtime/formats/dtypes.ts'
import { GGUF_ALIGNMENT, GgufType, parseGgufHeader, readGgufTensor } from '../../src/runtime/formats/gguf.ts'
import { writeGguf } from '../../src/runtime/formats/gguf-write.ts'
import { q4_0Dequantized } from '../../src/runtime/graph/quantize4.ts'
import { assertClose, seq, tmp } from './gguf-fixture.ts'

test('fp32 → fp16 rounds like the platform Float16Array (ties to even, subnormals, overflow)', () => {
  const F16 = (globalThis as unknown as { Float16Array: new (a: number[]) => { buffer: ArrayBuffer } })
    .Float16Array
  const values = [
    0,
    -0,
    1,
    -1,
    65504,
    65519.99,
    65520,
    1e9,
    -1e9,
    6.1e-5,
    5.96e-8,
    2.98e-8,
    2.99e-8,
    1e-10,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY
  ]
  for (let i = 0; i < 2000; i++) values.push(Math.sin(i) * 10 ** ((i % 12) - 8))
  const want = new Uint16Array(new F16(values).buffer)
  values.forEach((v, i) => {
    assert.is(f32ToF16Bits(v), want[i], `value ${v}`)
    if (Number.isFinite(v) && Math.abs(v) < 65504)
      assert.ok(Math.abs(f16BitsToF32(want[i]) - v) <= Math.abs(v) * 1e-3 + 6e-8)
  })
  assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(Number.NaN))))
})

test('writeGguf → parseGgufHeader round-trips metadata, reversed dims, 32-byte aligned data', async () => {
  const file = join(await tmp(), 'x.gguf')
  const a = seq(3 * 5)
  const b = seq(7, 3)
  const { bytes } = await writeGguf(
    file,
    [
      { key: 'general.architecture', type: GgufType.STRING, value: 'llama' },
      { key: 'llama.block_count', type: GgufType.UINT32, value: 2 },
      { key: 'llama.rope.freq_base', type: GgufType.FLOAT32, value: 10000 },
      { key: 'flag', type: GgufType.BOOL, value: true },
      { key: 'big', type: GgufType.UINT64, value: 2n ** 40n },
      { key: 'list', type: GgufType.ARRAY, itemType: GgufType.STRING, value: ['a b', 'ü', ''] },
      { key: 'ids', type: GgufType.ARRAY, itemType: GgufType.INT32, value: [1, -2, 3] }
    ],
    [
      { name: 'w', shape: [3, 5], dtype: 'F32', data: a },
      { name: 'h', shape: [7], dtype: 'F16', data: b }
    ]
  )
  const raw = await readFile(file)
  assert.is(raw.length, bytes)
  assert.is(raw.toString('latin1', 0, 4), 'GGUF')
  const g = parseGgufHeader(raw)
  assert.is(g.version, 3)
  assert.is(g.metadata.get('general.architecture'), 'llama')
  assert.is(g.metadata.get('llama.block_count'), 2)
  assert.is(g.types.get('llama.block_count'), GgufType.UINT32)
  assert.is(g.metadata.get('llama.rope.freq_base'), 10000)
  assert.is(g.metadata.get('flag'), true)
  assert.is(g.metadata.get('big'), 2n ** 40n)
  assert.equal(g.metadata.get('list'), ['a b', 'ü', ''])
  assert.equal(g.metadata.get('ids'), [1, -2, 3])
  assert.is(g.metadata.get('general.alignment'), GGUF_ALIGNMENT)
  assert.equal(g.tensors[0].ne, [5, 3]) // ggml order: innermost first
  assert.is(g.tensors[1].type, 1)
  assert.is(g.dataOffset % 32, 0)
  for (const t of g.tensors) assert.is(t.offset % 32, 0)
  assert.equal([...readGgufTensor(raw, g, 'w')], [...a])
  const h = readGgufTensor(raw, g, 'h')
  assertClose(h, b, 3e-3, 'h')
})

test('Q8_0 / Q4_0 tensors: 34 / 18-byte blocks of 32 as ggml reference-quantizes them', async () => {
  const file = join(await tmp(), 'q.gguf')
  const rng = (i: number) => Math.sin(i * 12.9898) * 0.7 + (i % 7 === 0 ? 1.5 : 0)
  const data = Float32Array.from({ length: 2 * 64 }, (_, i) => rng(i))
  await writeGguf(
    file,
    [{ key: 'general.architecture', type: GgufType.STRING, value: 'llama' }],
    [
      { name: 'q8', shape: [2, 64], dtype: 'Q8_0', data },
      { name: 'q4', shape: [2, 64], dtype: 'Q4_0', data }
    ]
  )
  const raw = await readFile(file)
  const g = parseGgufHeader(raw)
  assert.is(g.tensors[0].type, 8)
  assert.is(g.tensors[1].type, 2)
  const at = (i: number) => g.dataOffset + Number(g.tensors[i].offset)
  const half = (o: number) => {
    const f = new Float16Array(new Uint16Array([raw.readUInt16LE(o)]).buffer)
    return f[0]!
  }
  const want4 = q4_0Dequantized(data, 2, 64)
  for (let b = 0; b < 4; b++) {
    const o8 = at(0) + b * 34
    const d8 = half(o8)
    const o4 = at(1) + b * 18
    const d4 = half(o4)
    for (let j = 0; j < 32; j++) {
      const x = data[b * 32 + j]!
      assert.ok(Math.abs(raw.readInt8(o8 + 2 + j) * d8 - x) <= d8 * 0.51, `Q8_0 ${b}.${j}`)
      const byte = raw[o4 + 2 + (j % 16)]!
      const q = j < 16 ? byte & 15 : byte >> 4
      assert.is((q - 8) * d4, want4[b * 32 + j], `Q4_0 ${b}.${j}`)
    }
  }
  // the second tensor starts after the first's 4 blocks × 34 bytes, aligned
  assert.is(Number(g.tensors[1].offset), Math.ceil((4 * 34) / 32) * 32)
})

test('parseGgufHeader rejects a wrong magic, a truncated header and an absurd string length', () => {
  const bad = Buffer.from('GGUX\x03\x00\x00\x00', 'latin1')
  assert.throws(
    () => parseGgufHeader(bad),
    (e: Error) => e.name === 'GgufError' && /magic/.test(e.message)
  )
  const head = Buffer.alloc(24)
  head.write('GGUF', 0, 'latin1')
  head.writeUInt32LE(3, 4)
  head.writeBigUInt64LE(0n, 8)
  head.writeBigUInt64LE(1n, 16)
  assert.throws(() => parseGgufHeader(head), /truncated/)
  const huge = Buffer.concat([head, Buffer.alloc(8)])
  huge.writeBigUInt64LE(2n ** 40n, 24)
  assert.throws(() => parseGgufHeader(huge), /exceeds the limit/)
})

test.run()
