// Jobs across NATs over bad home uplinks: every home's uplink loses 3 % of frames each way, is
// shaped to 20 Mbit/s both ways (impair.ts: nftables numgen drops, tc tbf) and adds 10 ms each
// way (wire.py, a user-space wire: this kernel has no netem). A job from home A to home B must
// still succeed and end direct by hole punching; one to home C (symmetric NAT) must succeed
// relayed. The routers' drop counters prove the loss was there. Root only, like the whole tier.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { buildCast, type Cast, jobsFrom, PORT } from './fixture.ts'
import { dropped, impairUplink } from './impair.ts'
import { namespacesLeft, RELAY_IP, requireNamespaces } from './netns.ts'
import { peersOf, runIn } from './nodes.ts'

const DELAY_MS = 10
requireNamespaces()
const cast: Cast = await buildCast([
  { name: 'A', nat: 'friendly', serve: false, delayMs: DELAY_MS },
  { name: 'B', nat: 'friendly', serve: true, delayMs: DELAY_MS },
  { name: 'C', nat: 'symmetric', serve: true, delayMs: DELAY_MS }
])
for (const h of cast.topo.homes) impairUplink(h, { lossPct: 3, rateMbit: 20 })
const home = (name: string) => cast.topo.homes.find((h) => h.name === name)!
const node = (name: string) => cast.homes.get(name)!.node

test.after(async () => {
  const prefix = cast.topo.prefix
  await cast.close()
  assert.equal(namespacesLeft({ prefix }), [], 'every namespace of the run is removed')
})

test('the uplink adds its delay: a TCP handshake from home A to the relay takes two delays or more', async () => {
  // connect = SYN out, SYN-ACK back: once through A's wire each way; the best of 5 is the floor
  const r = await runIn(home('A').ns, [
    '--input-type=module',
    '-e',
    `import net from 'node:net'; const rtts = []
     const one = () => new Promise((res, rej) => { const t = performance.now()
       const s = net.connect(${PORT}, '${RELAY_IP}'); s.on('error', rej)
       s.on('connect', () => { rtts.push(performance.now() - t); s.destroy(); res() }) })
     for (let i = 0; i < 5; i++) await one().catch(() => {})
     console.log(JSON.stringify(rtts))`
  ])
  const rtts: number[] = JSON.parse(r.out.trim() || '[]')
  assert.ok(rtts.length >= 3, `handshakes failed: ${r.err}`)
  assert.ok(Math.min(...rtts) >= 2 * DELAY_MS, `rtt ${Math.min(...rtts)} ms < ${2 * DELAY_MS} ms`)
})

test('over lossy, slow, delayed uplinks: home A → home B ends direct, jobs succeed', async () => {
  for (const name of ['B', 'C'])
    for (let end = Date.now() + 90_000; (await peersOf(node(name))).reachability !== 'relayed'; ) {
      assert.ok(Date.now() < end, `home ${name} holds no reservation`)
      await new Promise((r) => setTimeout(r, 500))
    }
  const { outcomes } = await jobsFrom(cast, home('A').ns, node('B').peerId, { count: 4, maxTokens: 16 })
  for (const o of outcomes) {
    assert.ok(o.ok, `job failed: ${o.error}`)
    assert.is(o.servedBy, node('B').peerId)
  }
  assert.is(outcomes.at(-1)!.connection, 'direct', `connections: ${outcomes.map((o) => o.connection)}`)
})

test('over the same uplinks: home A → home C (symmetric NAT) succeeds relayed', async () => {
  const { outcomes } = await jobsFrom(cast, home('A').ns, node('C').peerId, { count: 4, maxTokens: 16 })
  for (const o of outcomes) {
    assert.ok(o.ok, `job failed: ${o.error}`)
    assert.is(o.servedBy, node('C').peerId)
    assert.is(o.connection, 'relayed')
  }
})

test('the routers dropped frames both ways (the loss was real)', () => {
  for (const name of ['A', 'B', 'C']) {
    const [down, up] = dropped(home(name))
    assert.ok(down > 0 && up > 0, `home ${name}: dropped ${down} down, ${up} up`)
  }
})

test.run()
