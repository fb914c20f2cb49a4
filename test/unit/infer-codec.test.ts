import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeCanonical } from '../../src/crypto/cbor.ts'
import { cidForBytes } from '../../src/crypto/cid.ts'
import {
  decodeRequestFrame,
  decodeResponseFrame,
  encodeFrame,
  errorFrame,
  type RequestFrame,
  type ResponseFrame,
  requestSigningBytes
} from '../../src/protocols/infer/codec.ts'
import { MAX_REQUEST_FRAME_BYTES, REQUEST_SIGNATURE_DOMAIN } from '../../src/protocols/infer/constants.ts'
import { ProtocolError } from '../../src/protocols/infer/errors.ts'

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
    /frame\.route: must hold 0\.\.2/
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
})

test.run()
