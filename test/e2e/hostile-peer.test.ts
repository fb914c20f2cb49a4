// A hostile peer on a real libp2p host sends request frames that do not decode to a real node:
// each is answered BAD_REQUEST, the fifth gets it disconnected and banned (its next streams are
// reset unanswered), and an honest client on another host is served throughout.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createClientHost } from '../../src/client/host.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { decodeResponseFrame } from '../../src/protocols/infer/codec.ts'
import { INFER_PROTOCOL } from '../../src/protocols/infer/constants.ts'
import { addrOf, makeFixtures, serving, startNode } from './infer-fixture.ts'

const root = await mkdtemp(join(tmpdir(), 'hostile-'))
let n1: OpenLoraNode

test.before(async () => {
  n1 = await startNode(root, 'n1', await makeFixtures(root, 0))
})
test.after(async () => {
  await n1?.stop()
  await rm(root, { recursive: true, force: true })
})

/** one stream: send bytes, return the first response frame's code, or 'reset' / 'refused' */
async function send(node: Awaited<ReturnType<typeof createClientHost>>['node'], bytes: Uint8Array) {
  let s: Awaited<ReturnType<typeof node.dialProtocol>>
  try {
    s = await node.dialProtocol(multiaddr(addrOf(n1)), INFER_PROTOCOL, { signal: AbortSignal.timeout(5000) })
  } catch {
    return 'refused'
  }
  try {
    s.send(bytes)
    const f = decodeResponseFrame((await lpStream(s).read({ signal: AbortSignal.timeout(5000) })).subarray())
    return f.t === 'error' ? f.code : f.t
  } catch {
    return 'reset'
  }
}

test('invalid frames score a peer down, disconnect it, ban it; honest peers are served', async () => {
  const evil = await createClientHost()
  const honest = await createClientHost()
  try {
    const garbage = Uint8Array.from([4, 0xff, 0xfe, 0xfd, 0xfc])
    const codes: string[] = []
    for (let i = 0; i < 5; i++) codes.push(await send(evil.node, garbage))
    assert.equal(codes, ['BAD_REQUEST', 'BAD_REQUEST', 'BAD_REQUEST', 'BAD_REQUEST', 'BAD_REQUEST'])
    // banned: whatever it sends now goes unanswered
    for (let i = 0; i < 3; i++) {
      const c = await send(evil.node, garbage)
      assert.ok(['reset', 'refused'].includes(c), `after the ban: ${c}`)
    }
    // an honest peer's first bad frame is still answered: the ban is per peer
    assert.is(await send(honest.node, garbage), 'BAD_REQUEST')
    const model = serving(n1).models()[0]!.modelId
    const r = await honest.client.infer(addrOf(n1), {
      model,
      promptIds: [1, 17, 42],
      params: { maxNewTokens: 3 }
    })
    assert.ok(r.verification?.ok, 'the honest peer is served and its receipt verifies')
  } finally {
    await evil.stop()
    await honest.stop()
  }
})

test.run()
