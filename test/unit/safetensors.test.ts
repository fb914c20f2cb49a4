import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  decodeFloats,
  encodeFloats,
  encodeSafetensors,
  loadCheckpointWeights,
  loadSafetensors,
  parseSafetensorsBytes,
  readSafetensorsHeader,
  writeSafetensors
} from '../../src/runtime/formats/safetensors.ts'

const dir = mkdtempSync(join(tmpdir(), 'openlora-st-'))
test.after(() => rmSync(dir, { recursive: true, force: true }))

/** Builds a file by hand from a header object and raw data, the way a foreign writer would. */
function rawFile(header: unknown, data: Uint8Array, lenOverride?: bigint): Uint8Array {
  const h = Buffer.from(JSON.stringify(header))
  const out = new Uint8Array(8 + h.length + data.length)
  new DataView(out.buffer).setBigUint64(0, lenOverride ?? BigInt(h.length), true)
  out.set(h, 8)
  out.set(data, 8 + h.length)
  return out
}

async function errorOf(p: Promise<unknown>): Promise<Error & { data?: Record<string, unknown> }> {
  try {
    await p
  } catch (err) {
    return err as Error
  }
  throw new Error('expected an error')
}

test('hand-built file with F32, F16 and BF16 tensors decodes to exact fp32', async () => {
  // 1.5 as F32 = 0x3fc00000; as F16 = 0x3e00; as BF16 = 0x3fc0. -2 as F16 = 0xc000, BF16 = 0xc000
  const f32 = new Uint8Array(new Float32Array([1.5, -0.25]).buffer)
  const f16 = new Uint8Array([0x00, 0x3e, 0x00, 0xc0])
  const bf16 = new Uint8Array([0xc0, 0x3f, 0x00, 0xc0])
  const data = new Uint8Array([...f32, ...f16, ...bf16])
  const file = join(dir, 'hand.safetensors')
  writeFileSync(
    file,
    rawFile(
      {
        __metadata__: { format: 'pt' },
        b: { dtype: 'F16', shape: [2], data_offsets: [8, 12] },
        a: { dtype: 'F32', shape: [1, 2], data_offsets: [0, 8] },
        c: { dtype: 'BF16', shape: [2, 1], data_offsets: [12, 16] }
      },
      data
    )
  )
  const m = await loadSafetensors(file)
  assert.equal([...m.get('a')!.data], [1.5, -0.25])
  assert.equal(m.get('a')!.shape, [1, 2])
  assert.equal([...m.get('b')!.data], [1.5, -2])
  assert.is(m.get('b')!.dtype, 'F16')
  assert.equal([...m.get('c')!.data], [1.5, -2])
  assert.equal((await readSafetensorsHeader(file)).metadata, { format: 'pt' })
})

test('write then read round-trips every dtype; fp16/bf16 round to nearest', async () => {
  const vals = new Float32Array([0, 1, -1, 2.5e-5, 1e-3, -65504, 6e-8, 1 / 3])
  const file = join(dir, 'rt.safetensors')
  await writeSafetensors(
    file,
    {
      x32: { shape: [2, 4], data: vals },
      x16: { shape: [8], data: vals, dtype: 'F16' },
      xbf: { shape: [8], data: vals, dtype: 'BF16' }
    },
    { note: 'hi' }
  )
  const m = await loadSafetensors(file)
  assert.equal([...m.get('x32')!.data], [...vals])
  const h = m.get('x16')!.data
  for (let i = 0; i < vals.length; i++)
    assert.ok(Math.abs(h[i]! - vals[i]!) <= Math.abs(vals[i]!) * 1e-3 + 6e-8)
  assert.is(h[5], -65504) // largest fp16 is exact
  const b = m.get('xbf')!.data
  for (let i = 0; i < vals.length; i++) assert.ok(Math.abs(b[i]! - vals[i]!) <= Math.abs(vals[i]!) * 8e-3)
  // decode(encode(x)) is idempotent for values already representable
  assert.equal([...decodeFloats('F16', encodeFloats('F16', h))], [...h])
  assert.equal([...decodeFloats('BF16', encodeFloats('BF16', b))], [...b])
  // header is padded to 8 bytes, as the reference writer does
  assert.is((await readSafetensorsHeader(file)).dataStart % 8, 0)
})

test('same tensors in any insertion order give the same bytes', () => {
  const a = encodeSafetensors({
    p: { shape: [1], data: new Float32Array([1]) },
    q: { shape: [1], data: new Float32Array([2]) }
  })
  const b = encodeSafetensors(
    new Map([
      ['q', { shape: [1], data: new Float32Array([2]) }],
      ['p', { shape: [1], data: new Float32Array([1]) }]
    ])
  )
  assert.equal(Buffer.from(a).toString('hex'), Buffer.from(b).toString('hex'))
})

test('every malformed file gets a SafetensorsError naming the file and tensor', async () => {
  const good = encodeSafetensors({ w: { shape: [4], data: new Float32Array([1, 2, 3, 4]) } })
  const d16 = new Uint8Array(16)
  const cases: [string, Uint8Array, RegExp, string | undefined][] = [
    ['short.safetensors', new Uint8Array(5), /truncated/, undefined],
    ['trunc.safetensors', good.subarray(0, good.length - 3), /truncated/, 'w'],
    ['hugeheader.safetensors', rawFile({}, new Uint8Array(0), 200_000_000n), /limit/, undefined],
    ['pastend.safetensors', rawFile({}, new Uint8Array(0), 500n), /past the end/, undefined],
    [
      'badjson.safetensors',
      (() => {
        const f = rawFile({}, new Uint8Array(0))
        f[8] = 0x5b
        return f
      })(),
      /JSON/,
      undefined
    ],
    [
      'dtype.safetensors',
      rawFile({ w: { dtype: 'F7', shape: [4], data_offsets: [0, 16] } }, d16),
      /dtype/,
      'w'
    ],
    [
      'shape.safetensors',
      rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, d16),
      /does not match/,
      'w'
    ],
    [
      'negshape.safetensors',
      rawFile({ w: { dtype: 'F32', shape: [-4], data_offsets: [0, 16] } }, d16),
      /shape/,
      'w'
    ],
    [
      'offs.safetensors',
      rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [16, 0] } }, d16),
      /data_offsets/,
      'w'
    ],
    [
      'oob.safetensors',
      rawFile({ w: { dtype: 'F32', shape: [8], data_offsets: [0, 32] } }, d16),
      /past the data/,
      'w'
    ],
    [
      'overlap.safetensors',
      rawFile(
        {
          a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
          b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] }
        },
        d16
      ),
      /gap or overlap/,
      'b'
    ],
    [
      'trailing.safetensors',
      rawFile({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, d16),
      /trailing/,
      undefined
    ],
    [
      'int.safetensors',
      rawFile({ w: { dtype: 'I32', shape: [4], data_offsets: [0, 16] } }, d16),
      /not supported/,
      'w'
    ]
  ]
  for (const [name, bytes, re, tensor] of cases) {
    const file = join(dir, name)
    writeFileSync(file, bytes)
    const err = await errorOf(loadSafetensors(file))
    assert.is(err.name, 'SafetensorsError', name)
    assert.match(err.message, re, name)
    assert.match(err.message, name)
    assert.is(err.data?.file, file)
    assert.is(err.data?.tensor, tensor, `${name}: ${err.message}`)
  }
  const missing = await errorOf(loadSafetensors(join(dir, 'nope.safetensors')))
  assert.is(missing.name, 'SafetensorsError')
})

test('sharded checkpoint loads through the index and checks it', async () => {
  const sdir = mkdtempSync(join(dir, 'shard-'))
  await writeSafetensors(join(sdir, 'model-00001-of-00002.safetensors'), {
    a: { shape: [2], data: new Float32Array([1, 2]) }
  })
  await writeSafetensors(join(sdir, 'model-00002-of-00002.safetensors'), {
    b: { shape: [1], data: new Float32Array([3]) }
  })
  const index = (wm: Record<string, string>) =>
    writeFileSync(
      join(sdir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: wm })
    )
  index({ a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' })
  const m = await loadCheckpointWeights(sdir)
  assert.equal([...m.keys()].sort(), ['a', 'b'])
  assert.equal([...m.get('b')!.data], [3])

  index({ a: 'model-00001-of-00002.safetensors', b: 'model-00001-of-00002.safetensors' })
  let err = await errorOf(loadCheckpointWeights(sdir))
  assert.is(err.name, 'SafetensorsError')
  assert.is(err.data?.tensor, 'b')

  index({ a: '../../etc/passwd.safetensors', b: 'model-00002-of-00002.safetensors' })
  err = await errorOf(loadCheckpointWeights(sdir))
  assert.match(err.message, /same directory/)

  index({
    a: 'model-00001-of-00002.safetensors',
    b: 'model-00002-of-00002.safetensors',
    c: 'model-00002-of-00002.safetensors'
  })
  err = await errorOf(loadCheckpointWeights(sdir))
  assert.match(err.message, /missing/)
  assert.is(err.data?.tensor, 'c')

  // single-file checkpoint
  const one = mkdtempSync(join(dir, 'one-'))
  await writeSafetensors(join(one, 'model.safetensors'), { z: { shape: [1], data: new Float32Array([9]) } })
  assert.equal([...(await loadCheckpointWeights(one)).get('z')!.data], [9])
})

test('random corruption of a valid file never escapes as anything but SafetensorsError', () => {
  const good = encodeSafetensors(
    {
      a: { shape: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
      b: { shape: [4], data: new Float32Array([1, 2, 3, 4]), dtype: 'BF16' }
    },
    { k: 'v' }
  )
  let seed = 12345
  const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n
  let rejected = 0
  for (let i = 0; i < 2000; i++) {
    const bytes = good.slice(0, i % 7 === 0 ? rnd(good.length) : good.length)
    for (let j = 0; j < 1 + rnd(4); j++) if (bytes.length > 0) bytes[rnd(bytes.length)] = rnd(256)
    try {
      const { tensors } = parseSafetensorsBytes('fuzz.safetensors', bytes)
      for (const t of tensors.values())
        assert.is(
          t.data.length,
          t.shape.reduce((x, y) => x * y, 1)
        )
    } catch (err) {
      assert.is((err as Error).name, 'SafetensorsError', (err as Error).stack)
      rejected++
    }
  }
  assert.ok(rejected > 500, `only ${rejected} rejected`)
})

test.run()
