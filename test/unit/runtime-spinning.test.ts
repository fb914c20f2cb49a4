// The thread-spinning policy (runtime/spinning.ts, infer.threadSpinning): each policy's ORT
// session config, the config values the node accepts, and a real session under each policy
// giving the same logits (spinning changes scheduling, never results). Idle CPU per policy is a
// measurement (npm run bench:idle-cpu), not a test.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { silentLogger } from '../../src/common/log.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { loadModel } from '../../src/runtime/model/index.ts'
import { SPIN_POLICIES, spinningSessionConfig, spinPolicyOf } from '../../src/runtime/spinning.ts'

test('policies: off never spins; in-run spins and parks the pool after every run; always never parks', () => {
  assert.equal(spinningSessionConfig('off'), { 'session.intra_op.allow_spinning': '0' })
  assert.equal(spinningSessionConfig('in-run'), {
    'session.intra_op.allow_spinning': '1',
    'session.force_spinning_stop': '1'
  })
  assert.equal(spinningSessionConfig('always'), {
    'session.intra_op.allow_spinning': '1',
    'session.force_spinning_stop': '0'
  })
})

test('infer.threadSpinning: false/absent = off, true = in-run (never a pool left spinning), names as given', () => {
  assert.is(spinPolicyOf(undefined), 'off')
  assert.is(spinPolicyOf(false), 'off')
  assert.is(spinPolicyOf(true), 'in-run')
  for (const p of SPIN_POLICIES) assert.is(spinPolicyOf(p), p)
})

test('a real session under each policy gives the same logits', async () => {
  const root = mkdtempSync(join(tmpdir(), 'openlora-spin-'))
  const dir = join(root, 'm')
  await makeModel({ out: dir, preset: 'tiny', seed: 4 })
  let first: Float32Array | undefined
  for (const p of SPIN_POLICIES) {
    const model = await loadModel(dir, {
      cacheDir: join(root, 'cache'),
      maxBatch: 1,
      maxSeqLen: 32,
      intraOpThreads: 2,
      sessionConfig: spinningSessionConfig(p),
      log: silentLogger
    })
    try {
      const seq = model.allocSequence()
      const got = Float32Array.from((await model.step([{ seq, tokens: [5, 6, 7], slot: 0 }]))[0]!)
      first ??= got
      for (let i = 0; i < got.length; i++) assert.is(got[i], first[i], `${p}: logit ${i}`)
    } finally {
      await model.dispose()
    }
  }
})

test.run()
