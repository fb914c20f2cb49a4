// Provider records in the network's DHT, with real nodes on loopback: a DHT server (the kind of
// node a relay is), a holder of an adapter, and a serving node that lacks it and has no advert
// naming the holder (the holder stopped advertising and was dropped from its table). A job for
// that adapter still runs: the serving node asks the DHT who provides the CID, fetches the
// adapter from that peer, verifies it and serves the job.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { InferClient } from '../../src/client/client.ts'
import { createClientHost } from '../../src/client/host.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { addrOf, type Fixtures, makeFixtures, runCli, serving, startNode, until } from './infer-fixture.ts'

const root = await mkdtemp(join(tmpdir(), 'dht-e2e-'))
let fx: Fixtures
let server: OpenLoraNode
let holder: OpenLoraNode
let needy: OpenLoraNode
let client: InferClient
let stopClient: () => Promise<void>
let cid: string

test.before(async () => {
  fx = await makeFixtures(root, 1)
  const added = await runCli(
    'adapter',
    'add',
    fx.adapterDirs[0]!,
    '--data-dir',
    join(root, 'holder'),
    '--model',
    fx.modelDir,
    '--json'
  )
  assert.is(added.code, 0, added.err)
  cid = JSON.parse(added.out).cid
  server = await startNode(root, 'server', fx, { serve: false, config: { 'network.dht': 'server' } })
  holder = await startNode(root, 'holder', fx, { bootstrap: [addrOf(server)] })
  needy = await startNode(root, 'needy', fx, { bootstrap: [addrOf(server)] })
  ;({ client, stop: stopClient } = await createClientHost())
})

test.after(async () => {
  await stopClient?.()
  await needy?.stop()
  await holder?.stop()
  await server?.stop()
  await rm(root, { recursive: true, force: true })
})

test('a node finds an adapter through the DHT when no advert names its holder', async () => {
  // the holder's adapter is on disk (cold): it provides the CID once the DHT knows the server
  const providersOf = async () => {
    const out: string[] = []
    const { CID } = await import('multiformats/cid')
    for await (const p of needy.libp2p.contentRouting.findProviders(CID.parse(cid), {
      signal: AbortSignal.timeout(3_000)
    }))
      out.push(p.id.toString())
    return out
  }
  await until(
    'the DHT names the holder',
    async () => (await providersOf().catch((): string[] => [])).includes(holder.peerId),
    30_000
  )
  // no advert may name the holder: it stops advertising and the needy node forgets it
  await holder.adverts.stop()
  await needy.peerTable.remove(holder.peerId)
  assert.is(needy.peerTable.get(holder.peerId), undefined)
  assert.not.ok(await serving(needy).store()!.has(cid), 'the needy node lacks the adapter')

  const model = serving(needy).models()[0]!.modelId
  const r = await client.infer(addrOf(needy), {
    model,
    adapter: cid,
    prompt: 'hi',
    params: { maxNewTokens: 4 }
  })
  assert.is(r.verification?.ok, true)
  assert.is(r.servedBy, needy.peerId)
  assert.is(r.receipt.body.adapter, cid)
  assert.ok(await serving(needy).store()!.has(cid), 'fetched and kept')
})

test.run()
