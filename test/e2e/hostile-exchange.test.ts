// Hostile peers on real libp2p hosts against the adapter and datanet exchanges of a real node:
// requests beyond a peer's burst (the node config's `exchange.adapter.requestBurstPerPeer`, set
// below the protocol's default so the test shows the config reaches the exchange) are refused
// RATE_LIMITED with a retry hint (another peer is still served); request frames that do not decode get a peer banned, hung up on, and shut out by the
// connection gater both ways (its new connections are dropped, the node refuses to dial it);
// an honest peer still fetches the adapter.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createClientHost } from '../../src/client/host.ts'
import { decodeCanonical, encodeCanonical } from '../../src/crypto/cbor.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { ADAPTER_PROTOCOL, ADAPTER_SERVE_LIMITS } from '../../src/protocols/adapter-exchange/constants.ts'
import { DATANET_PROTOCOL } from '../../src/protocols/datanet-exchange/constants.ts'
import { addrOf, makeFixtures, serving, startNode, until } from './infer-fixture.ts'

/** the configured burst: below the default, so a node that ignored its config would serve more */
const BURST = ADAPTER_SERVE_LIMITS.requestBurstPerPeer - 5
const root = await mkdtemp(join(tmpdir(), 'hostile-exchange-'))
let n1: OpenLoraNode
let cid = ''

test.before(async () => {
  const fx = await makeFixtures(root, 1)
  n1 = await startNode(root, 'n1', fx, { config: { 'exchange.adapter.requestBurstPerPeer': BURST } })
  const model = serving(n1).models()[0]!.modelId
  cid = (await serving(n1).importAdapter(fx.adapterDirs[0]!, model)).cid
})
test.after(async () => {
  await n1?.stop()
  await rm(root, { recursive: true, force: true })
})

type Host = Awaited<ReturnType<typeof createClientHost>>

/** One stream: send one frame, return the `t` or error `code` of the first answer, or 'reset' / 'refused'. */
async function ask(h: Host, protocol: string, frame: Uint8Array, raw = false): Promise<string> {
  let s: Awaited<ReturnType<Host['node']['dialProtocol']>>
  try {
    s = await h.node.dialProtocol(multiaddr(addrOf(n1)), protocol, { signal: AbortSignal.timeout(5000) })
  } catch {
    return 'refused'
  }
  try {
    const lp = lpStream(s, { maxDataLength: 1 << 20 })
    if (raw) s.send(frame)
    else await lp.write(frame)
    const f = decodeCanonical((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray()) as {
      t: string
      code?: string
      retryAfterMs?: number
    }
    s.abort(new Error('done'))
    return f.t === 'error' ? `${f.code}${f.retryAfterMs ? '+retry' : ''}` : f.t
  } catch {
    return 'reset'
  }
}

test('adapter requests beyond a peer burst are refused RATE_LIMITED; other peers are served', async () => {
  const greedy = await createClientHost()
  const other = await createClientHost()
  try {
    const req = encodeCanonical({ cid })
    const answers: string[] = []
    for (let i = 0; i < BURST + 3; i++) answers.push(await ask(greedy, ADAPTER_PROTOCOL, req))
    const burst = BURST
    assert.equal(answers.slice(0, burst), Array(burst).fill('manifest'), answers.join(','))
    assert.equal(answers.slice(burst), ['RATE_LIMITED+retry', 'RATE_LIMITED+retry', 'RATE_LIMITED+retry'])
    // a refusal costs little score: no ban for a few, and the limit is per peer
    assert.not.ok(n1.peerScores.isBanned(greedy.node.peerId.toString()))
    assert.is(await ask(other, ADAPTER_PROTOCOL, req), 'manifest')
  } finally {
    await greedy.stop()
    await other.stop()
  }
})

test('invalid datanet frames ban a peer at the connection gater; honest peers still fetch', async () => {
  const evil = await createClientHost()
  const honest = await createClientHost()
  try {
    const evilId = evil.node.peerId.toString()
    const garbage = Uint8Array.from([4, 0xff, 0xfe, 0xfd, 0xfc])
    // each bad request is cut off unanswered (the peer learns nothing of why)
    for (let i = 0; i < 5; i++) assert.is(await ask(evil, DATANET_PROTOCOL, garbage, true), 'reset')
    assert.ok(n1.peerScores.isBanned(evilId), 'banned after 5 invalid frames')
    assert.ok(n1.peerScores.banned().some((b) => b.peer === evilId))
    // hung up on...
    await until('the node hangs up', () => n1.libp2p.getConnections(evil.node.peerId).length === 0, 5000)
    // ...and kept out: a new connection is dropped by the gater before any protocol runs
    for (const protocol of [DATANET_PROTOCOL, ADAPTER_PROTOCOL]) {
      const got = await ask(evil, protocol, encodeCanonical({ cid }))
      assert.ok(['refused', 'reset'].includes(got), `${protocol} after the ban: ${got}`)
    }
    assert.is(n1.libp2p.getConnections(evil.node.peerId).length, 0, 'no connection survives the gater')
    // the node will not dial it either
    let denied = ''
    await n1.libp2p.dial(peerIdFromString(evilId)).catch((e: Error) => {
      denied = e.name
    })
    assert.is(denied, 'DialDeniedError')
    // the ban is per peer
    assert.is(await ask(honest, ADAPTER_PROTOCOL, encodeCanonical({ cid })), 'manifest')
  } finally {
    await evil.stop()
    await honest.stop()
  }
})

test.run()
