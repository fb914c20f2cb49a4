import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { PeerScores } from '../../src/protocols/shared/peer-score.ts'

test('5 invalid frames in a burst ban a peer for banMs; the ban then lifts', () => {
  let now = 0
  const s = new PeerScores({ now: () => now })
  for (let i = 0; i < 4; i++) assert.not.ok(s.invalidFrame('p'))
  assert.not.ok(s.isBanned('p'))
  assert.ok(s.invalidFrame('p'))
  assert.ok(s.isBanned('p'))
  assert.not.ok(s.isBanned('other'))
  now += 10 * 60_000 + 1
  assert.not.ok(s.isBanned('p'))
})

test('the score decays: a rare bad frame from an honest peer never bans it', () => {
  let now = 0
  const s = new PeerScores({ now: () => now })
  for (let i = 0; i < 100; i++) {
    assert.not.ok(s.invalidFrame('p'), `frame ${i}`)
    now += 60_000
  }
  assert.ok(s.score('p') > -45)
})

test('tracked peers are bounded (least recently seen forgotten first)', () => {
  // a fixed clock: the score decays with time, and a scheduler pause between the frame and the read
  // (a CI run read −9.9999) is not what this test is about
  const s = new PeerScores({ maxPeers: 3, now: () => 0 })
  for (const p of ['a', 'b', 'c', 'd']) s.invalidFrame(p)
  assert.is(s.score('a'), 0)
  assert.is(s.score('d'), -10)
})

test('rate-limit refusals cost little: a burst of 44 does not ban, 45 do; onBan fires once', () => {
  let now = 0
  const bans: string[] = []
  const s = new PeerScores({ now: () => now, onBan: (p) => bans.push(p) })
  for (let i = 0; i < 44; i++) assert.not.ok(s.rateLimited('p'))
  assert.ok(s.rateLimited('p'))
  assert.equal(bans, ['p'])
  assert.equal(
    s.banned().map((b) => b.peer),
    ['p']
  )
  now += 10 * 60_000 + 1
  assert.equal(s.banned(), [])
})

test('the connection gater denies a banned peer both ways, and no one else', async () => {
  const { bannedPeerGater } = await import('../../src/protocols/shared/peer-score.ts')
  const { peerIdFromString } = await import('@libp2p/peer-id')
  const evil = peerIdFromString('12D3KooWGC6TvWhfapngX6wvJHMYvKpDMXPb3ZnCZ6dMoaMtimQ5')
  const ok = peerIdFromString('12D3KooWNvSZnPi3RrhrTwEY4LuuBeB6K6facKUCJcyWG1aoDd2p')
  const s = new PeerScores()
  const g = bannedPeerGater(s)
  for (let i = 0; i < 5; i++) s.invalidFrame(evil.toString())
  for (const deny of [
    g.denyDialPeer!,
    g.denyInboundEncryptedConnection!,
    g.denyOutboundEncryptedConnection!
  ]) {
    assert.ok(await (deny as (p: typeof evil) => boolean)(evil))
    assert.not.ok(await (deny as (p: typeof ok) => boolean)(ok))
  }
})

test('block bans a peer by hand for ms (hanging up on it), unblock lifts it at once', () => {
  let now = 0
  const bans: string[] = []
  const s = new PeerScores({ now: () => now, onBan: (p) => bans.push(p) })
  assert.is(s.block('p', 5_000), 5_000)
  assert.ok(s.isBanned('p'))
  assert.equal(bans, ['p'])
  assert.equal(
    s.banned().map((b) => b.peer),
    ['p']
  )
  assert.ok(s.unblock('p'))
  assert.not.ok(s.isBanned('p'))
  assert.not.ok(s.unblock('p'), 'not banned any more')
  assert.not.ok(s.unblock('never-seen'))
  s.block('q', 1_000)
  now += 1_001
  assert.not.ok(s.isBanned('q'), 'a block lifts by itself')
})

test.run()
