// A relay (forwardJob) passes the next peer's frames to the client after checking each one; here
// the next peer is a stub on an in-memory stream pair that misbehaves, and the relay must stop it
// instead of passing on whatever it streams.
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream, streamPair } from '@libp2p/utils'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { silentLogger } from '../../src/common/log.ts'
import { encodeFrame, type RequestFrame, type ResponseFrame } from '../../src/protocols/infer/codec.ts'
import { InferError } from '../../src/protocols/infer/errors.ts'
import { forwardJob } from '../../src/protocols/infer/forward.ts'
import type { Job } from '../../src/protocols/infer/job.ts'
import { LatencyTracker } from '../../src/protocols/routing/router.ts'

const next = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
const client = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
const jobId = `0x${'ab'.repeat(16)}` as const

/** Runs forwardJob against a next peer that answers with `frames`; returns what reached the client. */
async function relay(frames: ResponseFrame[]): Promise<{ sent: ResponseFrame[]; err?: unknown }> {
  const [out, inb] = await streamPair()
  // The relay resets this stream when it cuts the peer off, so the stub's writes may fail.
  const peer = (async () => {
    const lp = lpStream(inb)
    await lp.read()
    for (const f of frames) await lp.write(encodeFrame(f))
    await inb.close()
  })().catch(() => {})
  const frame: RequestFrame = {
    t: 'request',
    body: {
      v: 1,
      jobId,
      model: 'm',
      adapter: null,
      promptIds: [1, 2],
      params: { maxNewTokens: 3 },
      deadline: Date.now() + 10_000,
      client,
      voucher: null
    },
    signature: new Uint8Array(64),
    route: []
  }
  const sent: ResponseFrame[] = []
  const job: Job = {
    frame,
    remote: client,
    signal: AbortSignal.timeout(10_000),
    streamed: false,
    async send(f) {
      if (f.t === 'token') job.streamed = true
      sent.push(f)
    }
  }
  const host = {
    handle: async () => {},
    unhandle: async () => {},
    dialProtocol: async (): Promise<Stream> => out
  }
  try {
    await forwardJob(job, next, { host, self: client, latency: new LatencyTracker(), log: silentLogger })
    return { sent }
  } catch (err) {
    return { sent, err }
  } finally {
    await peer
  }
}

const accepted: ResponseFrame = { t: 'accepted', jobId, servedBy: next, queuePosition: 0, route: [next] }
const token = (index: number): ResponseFrame => ({ t: 'token', index, id: 10 + index, text: `<${index}>` })

test('the relay stops a next peer that streams more tokens than the job asked for', async () => {
  const { sent, err } = await relay([accepted, token(0), token(1), token(2), token(3), token(4)])
  assert.instance(err, InferError)
  assert.match((err as Error).message, /more than the 3 tokens/)
  assert.is(sent.filter((f) => f.t === 'token').length, 3)
})

test('the relay stops a next peer whose tokens skip or repeat an index', async () => {
  const { sent, err } = await relay([accepted, token(0), token(0)])
  assert.instance(err, InferError)
  assert.match((err as Error).message, /token 0 where 1 was due/)
  assert.is(sent.filter((f) => f.t === 'token').length, 1)
})

test('tokens in order up to maxNewTokens pass through unchanged', async () => {
  const { sent, err } = await relay([accepted, token(0), token(1), token(2)])
  // the stub ends its stream without a result: the relay says so, after relaying all three tokens
  assert.instance(err, InferError)
  assert.match((err as Error).message, /stream/)
  assert.equal(
    sent.filter((f) => f.t === 'token').map((f) => (f as { index: number }).index),
    [0, 1, 2]
  )
})

test.run()
