// UPnP across a real NAT: home U's router runs miniupnpd (UPnP IGD + NAT-PMP over nftables,
// netns.ts); the node there has `network.upnp: true`, asks the router for a mapping of its
// listen port, and the public node then dials the router's public address directly (no relay)
// and runs a job on it. Root only, like the rest of the tier.
import { execFileSync } from 'node:child_process'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { until } from '../helpers/wait.ts'
import { buildCast, type Cast, jobsFrom, PORT } from './fixture.ts'
import { namespacesLeft, requireNamespaces } from './netns.ts'

requireNamespaces()
const cast: Cast = await buildCast([{ name: 'U', nat: 'upnp', serve: true }])
const home = cast.homes.get('U')!

test.after(async () => {
  const prefix = cast.topo.prefix
  await cast.close()
  if (prefix) assert.equal(namespacesLeft({ prefix }), [], 'every namespace of the run is removed')
})

test('the node maps its port on the UPnP router; a peer outside dials the mapped address directly', async () => {
  const ruleset = (): string =>
    execFileSync('ip', ['netns', 'exec', home.home.router, 'nft', 'list', 'table', 'inet', 'nat'], {
      encoding: 'utf8'
    })
  // the DNAT miniupnpd wrote at the node's request: public port → the home's address and port
  await until(
    'the router holds the node’s port mapping',
    async () => ruleset().includes(`dnat ip to ${home.home.ip}:${PORT}`),
    60_000
  )
  const addr = `/ip4/${home.home.wanIp}/tcp/${PORT}/p2p/${home.node.peerId}`
  const { outcomes } = await jobsFrom(cast, cast.topo.pub, home.node.peerId, { addr, count: 2 })
  for (const o of outcomes) {
    assert.ok(o.ok, `job failed: ${o.error}`)
    assert.is(o.servedBy, home.node.peerId)
    assert.is(o.connection, 'direct')
  }
})

test.run()
