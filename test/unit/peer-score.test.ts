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
  const s = new PeerScores({ maxPeers: 3 })
  for (const p of ['a', 'b', 'c', 'd']) s.invalidFrame(p)
  assert.is(s.score('a'), 0)
  assert.is(s.score('d'), -10)
})

test.run()
