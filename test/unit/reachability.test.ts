// Reachability from a node's own addresses, relay address parsing, and the optional advert field
// (wire compatible: absent stays valid, a bad value is refused by name).
import { multiaddr } from '@multiformats/multiaddr'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { reachabilityOf, relayOf } from '../../src/node/reachability.ts'
import { BindingVerifier } from '../../src/protocols/adverts/binding.ts'
import { buildAdvertBody, decodeAdvert, signAdvert } from '../../src/protocols/adverts/codec.ts'
import { validateAdvert } from '../../src/protocols/adverts/validate.ts'
import { testCaps, testPeer } from './advert-fixture.ts'

const RELAY = '12D3KooWQHZpor1LFd7apSodHP4K1EsdYETB8dLTEDWCu7dHYg9S'
const SELF = '12D3KooWLX7rjkg9mrZ4nrTzmPLVH6X5bVv7PGrKxfWLFPvCdSaE'
const ma = (s: string) => multiaddr(s)

test('reachability: public needs a public non-relayed address', () => {
  assert.is(reachabilityOf([ma('/ip4/127.0.0.1/tcp/4010'), ma('/ip4/10.0.1.2/tcp/4010')]), 'local')
  assert.is(reachabilityOf([ma('/ip4/192.168.1.5/tcp/4010'), ma('/ip4/100.64.0.1/tcp/1')]), 'local')
  assert.is(reachabilityOf([ma('/ip4/11.11.0.2/tcp/4010')]), 'public')
  assert.is(reachabilityOf([ma('/dns4/node.example.org/tcp/4010')]), 'public')
  const circuit = ma(`/ip4/11.11.0.1/tcp/4010/p2p/${RELAY}/p2p-circuit/p2p/${SELF}`)
  assert.is(reachabilityOf([ma('/ip4/10.0.1.2/tcp/4010'), circuit]), 'relayed')
  // a relayed address whose relay is public does not make the node itself public
  assert.is(reachabilityOf([circuit]), 'relayed')
  assert.is(reachabilityOf([circuit, ma('/ip4/11.11.0.2/tcp/4010')]), 'public')
  assert.is(reachabilityOf([]), 'local')
})

test('relayOf names the relay of a circuit address', () => {
  assert.is(relayOf(`/ip4/11.11.0.1/tcp/4010/p2p/${RELAY}/p2p-circuit/p2p/${SELF}`), RELAY)
  assert.is(relayOf('/ip4/11.11.0.1/tcp/4010'), undefined)
})

async function advertWith(reachability?: string) {
  const p = await testPeer()
  const body = buildAdvertBody({
    peerId: p.peerId,
    operator: p.account.address,
    operatorSig: p.binding,
    version: '0.1.0',
    addrs: [`/ip4/127.0.0.1/tcp/4010/p2p/${p.peerId}`],
    caps: testCaps(),
    seq: 1,
    now: Date.now(),
    ttlMs: 60_000,
    adapterListLimit: 64,
    ...(reachability ? { reachability: reachability as 'public' } : {})
  })
  return { p, adv: await signAdvert(body, p.key) }
}

test('advert: reachability is optional, round-trips, and a bad value is refused', async () => {
  const ctx = (from: string) => ({
    from,
    now: Date.now(),
    latestSeq: () => undefined,
    bindings: new BindingVerifier()
  })
  const without = await advertWith()
  assert.not.ok('reachability' in without.adv.body, 'absent when not given: old adverts stay canonical')
  assert.is((await validateAdvert(without.adv.bytes, ctx(without.p.peerId))).action, 'accept')
  const relayed = await advertWith('relayed')
  assert.is(decodeAdvert(relayed.adv.bytes).body.reachability, 'relayed')
  assert.is((await validateAdvert(relayed.adv.bytes, ctx(relayed.p.peerId))).action, 'accept')
  const bad = await advertWith('everywhere')
  const v = await validateAdvert(bad.adv.bytes, ctx(bad.p.peerId))
  assert.is(v.action, 'reject')
  if (v.action === 'reject') assert.match(v.message ?? '', /reachability/)
})

test.run()
