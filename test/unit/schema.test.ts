// The one schema helper: a zod failure becomes a SchemaError that names the field path, the bad
// value, what is allowed and where the value came from.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { bytesOf, hexBytes, parseWith, SchemaError, uint32, z } from '../../src/common/schema.ts'

const Frame = z.strictObject({
  t: z.literal('request'),
  sig: bytesOf(64),
  route: z.array(z.string().min(1).max(128)).max(2),
  body: z
    .strictObject({
      jobId: hexBytes(16),
      n: z.int().min(1).max(4096),
      role: z.enum(['user', 'assistant']),
      ids: z.array(uint32).max(3).optional(),
      note: z.string().nullable()
    })
    .refine((b) => b.n !== 7, { error: 'n is never 7 (a rule across fields)' })
})
const ok = {
  t: 'request',
  sig: new Uint8Array(64),
  route: [],
  body: { jobId: `0x${'01'.repeat(16)}`, n: 4, role: 'user', note: null }
}

function fails(input: unknown): SchemaError {
  try {
    parseWith(Frame, input, { at: 'frame', source: 'peer 12D3Koo' })
  } catch (err) {
    assert.instance(err, SchemaError)
    return err as SchemaError
  }
  assert.unreachable(`accepted ${JSON.stringify(input)}`)
  throw new Error('unreachable')
}

test('a valid value parses to itself', () => {
  assert.equal(parseWith(Frame, ok), ok)
})

test('each failure names the path, the value, what is allowed and the source', () => {
  const cases: [unknown, string, unknown, RegExp][] = [
    [1, 'frame', 1, /must be a map with keys t, sig, route, body \(got 1\)/],
    [{ ...ok, t: 'x' }, 'frame.t', 'x', /must be "request" \(got "x"\)/],
    [
      { ...ok, sig: new Uint8Array(3) },
      'frame.sig',
      new Uint8Array(3),
      /a byte string of 64 bytes \(got 3 bytes\)/
    ],
    [{ ...ok, route: ['a', 'b', 'c'] }, 'frame.route', ['a', 'b', 'c'], /an array of at most 2 items/],
    [{ ...ok, body: { ...ok.body, n: 0 } }, 'frame.body.n', 0, /must be an integer in 1\.\.4096 \(got 0\)/],
    [{ ...ok, body: { ...ok.body, role: 'root' } }, 'frame.body.role', 'root', /one of "user", "assistant"/],
    [{ ...ok, body: { ...ok.body, ids: [1, -1] } }, 'frame.body.ids[1]', -1, /an integer in 0\.\.4294967295/],
    [
      { ...ok, body: { ...ok.body, jobId: '0x1' } },
      'frame.body.jobId',
      '0x1',
      /0x-prefixed lowercase hex of 16/
    ],
    [{ ...ok, body: { ...ok.body, note: 3 } }, 'frame.body.note', 3, /a string, or null \(got 3\)/],
    [
      { ...ok, body: { ...ok.body, extra: 1 } },
      'frame.body.extra',
      1,
      /unknown field; allowed: jobId, n, role/
    ],
    [{ ...ok, body: undefined }, 'frame.body', undefined, /missing; must be a map/],
    [{ ...ok, body: { ...ok.body, n: 7 } }, 'frame.body', { ...ok.body, n: 7 }, /: n is never 7/]
  ]
  for (const [input, field, value, re] of cases) {
    const e = fails(input)
    assert.is(e.code, 'INVALID_INPUT')
    assert.is(e.field, field, e.message)
    assert.equal(e.data.value, value, e.message)
    assert.is(e.data.source, 'peer 12D3Koo')
    assert.ok(e.message.startsWith(`${field} (from peer 12D3Koo): `), e.message)
    assert.match(e.message, re)
  }
})

test('a layer builds its own error from the issue', () => {
  class FrameError extends Error {}
  try {
    parseWith(Frame, { ...ok, t: 'y' }, { error: (i) => new FrameError(`bad ${i.field}: ${i.allowed}`) })
    assert.unreachable()
  } catch (err) {
    assert.instance(err, FrameError)
    assert.is((err as Error).message, 'bad t: "request"')
  }
})

test('long values are cut in messages', () => {
  const e = fails({ ...ok, route: ['x'.repeat(500)] })
  assert.is(e.field, 'frame.route[0]')
  assert.ok(e.message.length < 400, e.message)
})

test.run()
