import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeCanonical } from '../../src/crypto/cbor.ts'
import { cidForBytes } from '../../src/crypto/cid.ts'
import {
  decodeRequestFrame,
  decodeResponseFrame,
  type ErrorFrame,
  encodeFrame,
  errorFrame,
  type RequestFrame,
  type ResponseFrame,
  requestSigningBytes
} from '../../src/protocols/infer/codec.ts'
import { MAX_REQUEST_FRAME_BYTES, REQUEST_SIGNATURE_DOMAIN } from '../../src/protocols/infer/constants.ts'
import { InferError, inferErrorFromFrame, ProtocolError, toWire } from '../../src/protocols/infer/errors.ts'

const request = (over: Partial<RequestFrame['body']> = {}): RequestFrame => ({
  t: 'request',
  body: {
    v: 1,
    jobId: `0x${'01'.repeat(16)}`,
    model: 'tiny',
    adapter: cidForBytes(new Uint8Array([7])),
    prompt: 'hello',
    params: { maxNewTokens: 8, temperature: 0.7, seed: 3 },
    deadline: Date.now() + 60_000,
    client: '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK',
    voucher: null,
    ...over
  },
  signature: new Uint8Array(64).fill(1),
  route: []
})

function mustFail(fn: () => unknown, field: RegExp) {
  try {
    fn()
  } catch (err) {
    assert.instance(err, ProtocolError)
    assert.match((err as Error).message, field)
    return
  }
  assert.unreachable('expected a ProtocolError')
}

test('request frame round trip keeps every field, drops absent optionals', () => {
  const f = request()
  const back = decodeRequestFrame(encodeFrame(f))
  assert.equal(back, f)
  const noTemp = request({ params: { maxNewTokens: 4, temperature: undefined } })
  assert.equal(decodeRequestFrame(encodeFrame(noTemp)).body.params, { maxNewTokens: 4 })
})

test('the signed bytes carry the domain so a request signature is never a receipt signature', () => {
  const f = request()
  const bytes = requestSigningBytes(f.body)
  assert.equal(bytes, encodeCanonical({ domain: REQUEST_SIGNATURE_DOMAIN, body: f.body }))
})

test('exactly one of prompt, promptIds, messages', () => {
  mustFail(() => decodeRequestFrame(encodeFrame(request({ promptIds: [1, 2] }))), /exactly one/)
  mustFail(() => decodeRequestFrame(encodeFrame(request({ prompt: undefined }))), /exactly one/)
  const m = request({ prompt: undefined, messages: [{ role: 'user', content: 'hi' }] })
  assert.equal(decodeRequestFrame(encodeFrame(m)).body.messages, [{ role: 'user', content: 'hi' }])
  const bad = request({ prompt: undefined, messages: [{ role: 'root' as 'user', content: 'hi' }] })
  mustFail(() => decodeRequestFrame(encodeFrame(bad)), /messages\[0\]\.role/)
})

test('schema errors name the field and the allowed range', () => {
  mustFail(
    () => decodeRequestFrame(encodeFrame(request({ params: { maxNewTokens: 0 } }))),
    /maxNewTokens.*1\.\.4096/
  )
  mustFail(() => decodeRequestFrame(encodeFrame(request({ jobId: '0x01' }))), /body\.jobId/)
  mustFail(() => decodeRequestFrame(encodeFrame(request({ adapter: 'not-a-cid' }))), /body\.adapter/)
  mustFail(() => decodeRequestFrame(encodeFrame(request({ v: 2 as 1 }))), /body\.v/)
  const extra = { ...request(), body: { ...request().body, extra: 1 } } as unknown as RequestFrame
  mustFail(() => decodeRequestFrame(encodeFrame(extra)), /body\.extra: unknown field/)
  mustFail(
    () => decodeRequestFrame(encodeFrame({ ...request(), route: ['a', 'b', 'c'] })),
    /frame\.route: must be an array of at most 2 items/
  )
})

test('oversized, truncated and non-CBOR frames are protocol errors', () => {
  mustFail(() => decodeRequestFrame(new Uint8Array(MAX_REQUEST_FRAME_BYTES + 1)), /exceeds/)
  const bytes = encodeFrame(request())
  mustFail(() => decodeRequestFrame(bytes.subarray(0, bytes.length - 3)), /not canonical CBOR/)
  mustFail(() => decodeRequestFrame(new Uint8Array([0xff, 0x00])), /not canonical CBOR/)
  // CBOR that is not a map, or a map without the request shape
  mustFail(() => decodeRequestFrame(new Uint8Array([0x01])), /frame: must be a map/)
  mustFail(
    () => decodeRequestFrame(new Uint8Array([0xa2, 0x61, 0x74, 0x01, 0x61, 0x61, 0x02])),
    /unknown field/
  )
})

test('every field of a request is checked against its schema, with the value shown', () => {
  const cases: [Partial<RequestFrame['body']>, RegExp][] = [
    [
      { params: { maxNewTokens: 4, topP: 3 } },
      /body\.params\.topP: must be a number in \(0, 1\] \(1 = off\) \(got 3\)/
    ],
    [
      { params: { maxNewTokens: 4, stopStrings: [''] } },
      /body\.params\.stopStrings\[0\]: must be a string of 1\.\.64/
    ],
    [{ model: '' }, /body\.model: must be a string of 1\.\.128 characters/],
    [{ deadline: -1 }, /body\.deadline: must be an integer/],
    [{ voucher: { blob: 'x'.repeat(5000) } }, /body\.voucher: a voucher must encode to at most 4096 bytes/],
    [
      { prompt: undefined, promptIds: [1, 2 ** 32] },
      /body\.promptIds\[1\]: must be an integer in 0\.\.4294967295/
    ],
    [
      {
        prompt: undefined,
        messages: [
          { role: 'user', content: 'x'.repeat(150_000) },
          { role: 'user', content: 'x'.repeat(60_000) }
        ]
      },
      /body\.messages: total content exceeds 200000 characters/
    ]
  ]
  for (const [patch, re] of cases) mustFail(() => decodeRequestFrame(encodeFrame(request(patch))), re)
  const sig = { ...request(), signature: new Uint8Array(10) }
  mustFail(
    () => decodeRequestFrame(encodeFrame(sig)),
    /frame\.signature: must be a byte string of 64 bytes \(got 10 bytes\)/
  )
})

test('response frames decode and unknown frame types are refused', () => {
  const jobId = `0x${'02'.repeat(16)}` as const
  const frames: ResponseFrame[] = [
    { t: 'accepted', jobId, servedBy: 'peer', queuePosition: 0, route: ['a', 'peer'] },
    { t: 'token', index: 0, id: 42, text: ' hi' },
    { t: 'progress', jobId, tokens: 3, queuePosition: null },
    errorFrame(jobId, 'BUSY', 'full', 250)
  ]
  for (const f of frames) assert.equal(decodeResponseFrame(encodeFrame(f)), f)
  mustFail(() => decodeResponseFrame(encodeCanonical({ t: 'surprise' })), /frame\.t/)
  mustFail(
    () => decodeResponseFrame(encodeCanonical({ ...errorFrame(jobId, 'BUSY', 'x'), code: 'NOPE' })),
    /error\.code/
  )
  const terms = {
    reason: 'UNDERPAID',
    operator: `0x${'ab'.repeat(20)}`,
    pricePer1kTokens: '10',
    maxAmountDue: '01',
    chainId: 31337,
    settlement: `0x${'cd'.repeat(20)}`
  }
  mustFail(
    () =>
      decodeResponseFrame(
        encodeCanonical({ ...errorFrame(jobId, 'PAYMENT_REQUIRED', 'pay'), payment: terms })
      ),
    /error\.payment\.maxAmountDue: must be a decimal integer string without leading zeros .*\(got "01"\)/
  )
  mustFail(
    () => decodeResponseFrame(encodeCanonical({ t: 'token', index: 0, id: 1, text: 'x'.repeat(300) })),
    /token\.text: must be a string of at most 256 characters/
  )
  mustFail(
    () => decodeResponseFrame(encodeCanonical({ t: 'progress', jobId, tokens: 1, queuePosition: 'x' })),
    /progress\.queuePosition: must be an integer in 0\.\.4294967296, or null/
  )
})

test('PEER_UNREACHABLE travels as INTERNAL with the code before the message; this client restores it', () => {
  const jobId = `0x${'03'.repeat(16)}` as const
  const e = new InferError('PEER_UNREACHABLE', 'could not dial serving peer P', { retryAfterMs: 1000 })
  const w = toWire(e)
  assert.equal(w, { code: 'INTERNAL', message: 'PEER_UNREACHABLE: could not dial serving peer P' })
  // a client that predates the code decodes the frame (the wire classes did not change) and sees
  // a failure with the whole message
  const f = decodeResponseFrame(encodeFrame(errorFrame(jobId, w.code, w.message, 1000)))
  assert.ok(f.t === 'error' && f.code === 'INTERNAL' && f.message.startsWith('PEER_UNREACHABLE: '))
  const back = inferErrorFromFrame(f as ErrorFrame)
  assert.is(back.code, 'PEER_UNREACHABLE')
  assert.is(back.message, 'could not dial serving peer P')
  assert.is(back.retryAfterMs, 1000)
  // only a registered precise code, under its own wire class, is restored
  const asIs = (code: ErrorFrame['code'], message: string) =>
    inferErrorFromFrame(errorFrame(jobId, code, message) as ErrorFrame)
  assert.is(asIs('BUSY', 'PEER_UNREACHABLE: x').code, 'BUSY')
  assert.is(asIs('INTERNAL', 'BUSY: x').code, 'INTERNAL')
  assert.is(asIs('INTERNAL', 'peer_unreachable: x').code, 'INTERNAL')
  assert.is(asIs('PAYMENT_REQUIRED', 'UNDERPAID: x').message, 'UNDERPAID: x')
  // other codes cross unchanged
  assert.equal(toWire(new InferError('BUSY', 'full')), { code: 'BUSY', message: 'full' })
})

test.run()
