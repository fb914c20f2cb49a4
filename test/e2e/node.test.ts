import { rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { adminRequest } from '../../src/node/admin.ts'
import { createNode } from '../../src/node/node.ts'
import { startNode, tcpAddr, tempDir, testConfig, waitFor } from './node-fixture.ts'

const dirs: string[] = []
const dir = (): string => {
  const d = tempDir()
  dirs.push(d)
  return d
}

test('a node starts, keeps its keys private, answers on its admin endpoint and stops', async () => {
  const d = dir()
  const node = await startNode(d)
  try {
    assert.is((statSync(join(d, 'keys', 'peer.key')).mode & 0o777).toString(8), '600')
    assert.is((statSync(join(d, 'keys', 'operator.key')).mode & 0o777).toString(8), '600')
    assert.match(node.identity.operator.address, /^0x[0-9a-fA-F]{40}$/)
    const status = await adminRequest<{ peerId: string; operator: string; adverts: { seq: number } }>(
      d,
      '/status'
    )
    assert.is(status.peerId, node.peerId)
    assert.is(status.operator, node.identity.operator.address)
    assert.ok(status.adverts.seq > 0, 'published its advert at start')
    // admin POST bodies are schema-checked: the refusal names the key, the value and what is allowed
    const refused = (path: string, body: unknown) =>
      adminRequest(d, path, 5_000, body).then(
        (): string => {
          throw new Error(`${path} accepted ${JSON.stringify(body)}`)
        },
        (err: Error) => {
          assert.is(err.name, 'AdminRefusedError')
          return err.message
        }
      )
    assert.match(
      await refused('/datanets/fetch', { id: '0x12', version: 1 }),
      /body\.id: must be a datanet id \(0x \+ 64 lowercase hex\) \(got "0x12"\)/
    )
    assert.match(
      await refused('/datanets/fetch', { id: `0x${'ab'.repeat(32)}`, version: 0 }),
      /body\.version: must be an integer in 1\.\.4294967295 \(got 0\)/
    )
    assert.match(
      await refused('/datanets/fetch', { id: `0x${'ab'.repeat(32)}`, version: 1, from: 'peer' }),
      /body\.from: must be an array/
    )
    assert.match(
      await refused('/adapters/add', { dir: '' }),
      /body\.dir: must be an adapter directory \(got ""\)/
    )
    assert.match(
      await refused('/adapters/add', { dir: '/x', mdl: 'm' }),
      /body\.mdl: unknown field; allowed: dir, model/
    )
    const addrs = node.libp2p.getMultiaddrs().map((m) => m.toString())
    assert.ok(
      addrs.some((a) => a.includes('/ws')),
      'listens on WebSockets'
    )
    assert.ok(
      addrs.some((a) => /\/tcp\/\d+\/p2p\//.test(a)),
      'listens on TCP'
    )
  } finally {
    await node.stop()
  }
  await adminRequest(d, '/status').then(
    () => assert.unreachable('admin should be gone after stop'),
    (err: Error) => assert.is(err.name, 'AdminUnavailableError')
  )
})

test('two nodes can never share a data directory', async () => {
  const d = dir()
  const node = await startNode(d)
  try {
    await createNode(testConfig(d)).then(
      () => assert.unreachable('second node on the same dir must fail'),
      (err: Error & { code?: string }) => {
        assert.is(err.name, 'DataDirLockedError')
        assert.ok(err.message.includes(d))
      }
    )
  } finally {
    await node.stop()
  }
  // after a clean stop the directory is free again
  const again = await startNode(d)
  await again.stop()
})

test('a restarted node keeps its peer id and operator, and rejoins', async () => {
  const d0 = dir()
  const d1 = dir()
  const a = await startNode(d0)
  let b = await startNode(d1, { 'network.bootstrap': [tcpAddr(a)] })
  try {
    const id = b.peerId
    const operator = b.identity.operator.address
    await waitFor(
      () => a.peerTable.get(id) !== undefined && b.peerTable.get(a.peerId) !== undefined,
      20_000,
      'adverts'
    )
    const seqBefore = a.peerTable.latestSeq(id)!
    await b.stop()
    b = await startNode(d1, { 'network.bootstrap': [tcpAddr(a)] })
    assert.is(b.peerId, id)
    assert.is(b.identity.operator.address, operator)
    // the table came back from LevelDB before any peer answered
    assert.ok(b.peerTable.size >= 1)
    await waitFor(
      () => (a.peerTable.latestSeq(id) ?? 0) > seqBefore,
      20_000,
      'restarted advert at the other node'
    )
    assert.ok(
      a.libp2p.getConnections().some((c) => c.remotePeer.toString() === id),
      'reconnected'
    )
  } finally {
    await Promise.all([a.stop(), b.stop()])
  }
})

test('with mDNS on and no bootstrap list, two nodes on one host find each other', async () => {
  const a = await startNode(dir(), { 'network.mdns': true })
  const b = await startNode(dir(), { 'network.mdns': true })
  try {
    await waitFor(
      () => a.peerTable.get(b.peerId) !== undefined && b.peerTable.get(a.peerId) !== undefined,
      30_000,
      'adverts over an mDNS-found connection'
    )
  } finally {
    await Promise.all([a.stop(), b.stop()])
  }
})

test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
test.run()
