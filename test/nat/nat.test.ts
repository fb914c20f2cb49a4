// The NAT tier: real node processes across real NATs built from network namespaces (netns.ts).
// A relay/bootstrap node and a public node on a public-looking "internet"; homes A and B behind
// endpoint-independent NATs, home C behind a symmetric one. Checks AutoNAT verdicts, relay
// reservations, home → home jobs (the connection each ran on), an adapter fetched by CID across
// homes, and a relay restart after which reservations return and jobs resume. Root only (CI is
// root): without root or the tools it fails saying how to run it.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { until } from '../helpers/wait.ts'
import { buildCast, type Cast, jobsFrom, peersOf, restartRelay } from './fixture.ts'
import { namespacesLeft, requireNamespaces } from './netns.ts'

// Built at the top, not in a before hook: uvu reports a failing hook as nothing more than zero
// passed tests, and a machine that cannot run this tier must say why (requireNamespaces), loudly.
requireNamespaces()
const cast: Cast = await buildCast([
  { name: 'A', nat: 'friendly', serve: false },
  { name: 'B', nat: 'friendly', serve: true },
  { name: 'C', nat: 'symmetric', serve: true }
])

const home = (name: string) => cast.homes.get(name)!
const nsOf = (name: string) => cast.topo.homes.find((h) => h.name === name)!.ns

test.after(async () => {
  const prefix = cast.topo.prefix
  await cast.close()
  if (prefix) assert.equal(namespacesLeft({ prefix }), [], 'every namespace of the run is removed')
})

test('AutoNAT: the public node is confirmed public, homes behind NAT are not', async () => {
  assert.ok(cast.modelId, 'the relay learnt the homes’ model from their adverts')
  await until(
    'the public node confirms its address',
    async () => (await peersOf(cast.pub)).reachability === 'public',
    60_000
  )
  for (const name of ['B', 'C']) {
    const p = await peersOf(home(name).node)
    assert.not.equal(p.reachability, 'public', `home ${name} behind NAT has no confirmed public address`)
  }
})

test('homes hold reservations on the relay and advertise relayed reachability', async () => {
  for (const name of ['B', 'C']) {
    await until(
      `home ${name} is relayed`,
      async () => (await peersOf(home(name).node)).reachability === 'relayed',
      60_000
    )
  }
  await until(
    'the relay holds both homes’ adverts with a circuit address',
    async () => {
      const t = (await peersOf(cast.relay)).table
      return ['B', 'C'].every((n) => {
        const e = t.find((x) => x.peerId === home(n).node.peerId)
        return e?.reachability === 'relayed' && e.addrs.some((a) => a.includes('/p2p-circuit'))
      })
    },
    60_000
  )
})

test('home A → home B (endpoint-independent NAT): hole punching makes it direct, jobs succeed', async () => {
  const { outcomes } = await jobsFrom(cast, nsOf('A'), home('B').node.peerId, { count: 3 })
  for (const o of outcomes) {
    assert.ok(o.ok, `job failed: ${o.error}`)
    assert.is(o.servedBy, home('B').node.peerId)
    assert.is(o.connection, 'direct')
  }
})

test('home A → home C (symmetric NAT): jobs succeed and stay relayed', async () => {
  const { outcomes } = await jobsFrom(cast, nsOf('A'), home('C').node.peerId, { count: 3 })
  for (const o of outcomes) {
    assert.ok(o.ok, `job failed: ${o.error}`)
    assert.is(o.servedBy, home('C').node.peerId)
    assert.is(o.connection, 'relayed')
  }
})

test('an adapter held only in home B is fetched by CID into home C, which serves the job', async () => {
  const { outcomes } = await jobsFrom(cast, nsOf('A'), home('C').node.peerId, { adapter: cast.adapterCid })
  const o = outcomes[0]!
  assert.ok(o.ok, `job failed: ${o.error}`)
  assert.is(o.servedBy, home('C').node.peerId)
  assert.is(o.adapter, cast.adapterCid)
})

test('the relay restarts: reservations come back and jobs resume', async () => {
  await restartRelay(cast)
  for (const name of ['B', 'C']) {
    await until(
      `home ${name} re-reserves on the restarted relay`,
      async () => {
        const p = await peersOf(home(name).node)
        return p.reachability === 'relayed' && p.connections.some((c) => c.peerId === cast.relay.peerId)
      },
      60_000
    )
  }
  const { outcomes } = await jobsFrom(cast, nsOf('A'), home('B').node.peerId, { retryUntilMs: 30_000 })
  assert.ok(outcomes[0]!.ok, `job after the restart failed: ${outcomes[0]!.error}`)
})

test.run()
