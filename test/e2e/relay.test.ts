// Circuit relay v2 on loopback, with real nodes: a relay server, a serving node that holds a
// reservation on it (its relay keeper), and a client that reaches that node only through the
// relay's /p2p-circuit address. The job runs on the limited connection and says "relayed"; the
// relay restarts on the same port and the reservation comes back (js-libp2p#3601 worked around),
// after which jobs run again. The NAT tier (test/nat) does the same across real NATs.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { InferClient } from '../../src/client/client.ts'
import { createClientHost } from '../../src/client/host.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { addrOf, type Fixtures, makeFixtures, serving, startNode, until } from './infer-fixture.ts'

const root = await mkdtemp(join(tmpdir(), 'relay-e2e-'))
let fx: Fixtures
let relay: OpenLoraNode
let home: OpenLoraNode
let client: InferClient
let stopClient: () => Promise<void>
let relayPort = 0
let reservedAt = 0

const RELAY_CONFIG = {
  'network.relay': {
    server: true,
    maxReservations: 16,
    dataLimitMb: 64,
    durationLimitS: 600,
    // the shortest allowed: libp2p refreshes 30 s in (at most 5 min before expiry, at least 30 s)
    reservationTtlS: 60,
    keeperIntervalMs: 500
  }
}

async function startRelay(port: number): Promise<OpenLoraNode> {
  return startNode(root, 'relay', fx, {
    serve: false,
    config: { ...RELAY_CONFIG, 'network.listen': [`/ip4/127.0.0.1/tcp/${port}`] }
  })
}

function circuitAddr(): string {
  return `${addrOf(relay)}/p2p-circuit/p2p/${home.peerId}`
}

test.before(async () => {
  fx = await makeFixtures(root, 1)
  relay = await startRelay(0)
  relayPort = Number(addrOf(relay).split('/tcp/')[1]!.split('/')[0])
  home = await startNode(root, 'home', fx, {
    bootstrap: [addrOf(relay)],
    config: { 'network.relay': { ...RELAY_CONFIG['network.relay'], server: false } }
  })
  // the relayed path itself is under test here: no hole punching (test/nat covers that)
  ;({ client, stop: stopClient } = await createClientHost({ holePunch: false }))
})

test.after(async () => {
  await stopClient?.()
  await home?.stop()
  await relay?.stop()
  await rm(root, { recursive: true, force: true })
})

test('a node holds a reservation on its bootstrap relay and advertises the circuit address', async () => {
  const keeper = home.libp2p.services.relayKeeper
  await until('home reserves on the relay', () => keeper.relays().includes(relay.peerId), 20_000)
  reservedAt = Date.now()
  assert.is(keeper.reachability(), 'relayed')
  assert.ok(relay.libp2p.services.relay!.reservations.size >= 1)
  await until(
    'the advert names the relayed address and reachability',
    () => {
      const body = relay.peerTable.get(home.peerId)?.advert.body
      return body?.reachability === 'relayed' && body.addrs.some((a) => a.includes('/p2p-circuit'))
    },
    20_000
  )
})

test('a job reaches the node over the relay and says "relayed"', async () => {
  const model = serving(home).models()[0]!.modelId
  const r = await client.infer(circuitAddr(), { model, prompt: 'hello', params: { maxNewTokens: 8 } })
  assert.is(r.verification?.ok, true)
  assert.is(r.servedBy, home.peerId)
  assert.is(r.connection, 'relayed')
  assert.is(r.outputIds.length, 8)
})

test('a reservation outlives its TTL: the client refreshes it and the relay keeps it', async () => {
  // the relay drops a reservation nobody refreshed when its TTL (60 s here) runs out
  const held = () => relay.libp2p.services.relay!.reservations.has(home.libp2p.peerId)
  assert.ok(held(), 'the relay holds a reservation for the home node')
  const wait = reservedAt + 65_000 - Date.now()
  if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  assert.ok(held(), 'still held after its TTL')
  assert.ok(home.libp2p.services.relayKeeper.relays().includes(relay.peerId), 'still advertised')
  const model = serving(home).models()[0]!.modelId
  const r = await client.infer(circuitAddr(), { model, prompt: 'later', params: { maxNewTokens: 4 } })
  assert.is(r.connection, 'relayed')
})

test('after the relay restarts the reservation comes back and jobs resume', async () => {
  const keeper = home.libp2p.services.relayKeeper
  const before = keeper.stats.made
  await relay.stop()
  await until('home notices the reservation is gone', () => !keeper.relays().includes(relay.peerId), 10_000)
  const downAt = Date.now()
  relay = await startRelay(relayPort)
  await until('the reservation is re-made', () => keeper.relays().includes(relay.peerId), 20_000)
  assert.ok(keeper.stats.made > before, 'the keeper made the new reservation')
  const model = serving(home).models()[0]!.modelId
  // the client's old relayed connection died with the relay: the next job dials afresh
  const r = await client.infer(circuitAddr(), { model, prompt: 'again', params: { maxNewTokens: 4 } })
  assert.is(r.verification?.ok, true)
  assert.is(r.connection, 'relayed')
  assert.ok(Date.now() - downAt < 30_000)
})

test.run()
