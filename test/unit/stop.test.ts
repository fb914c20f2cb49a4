// settleWithin bounds a stop that may never settle (libp2p's stop() waiting on a connection that
// never finishes closing): the caller goes on after the bound, and a script awaiting it at top
// level exits normally instead of dying with "unsettled top-level await" (exit 13), which is how
// the NAT tier's paying client failed once in CI.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'uvu'
import { settleWithin } from '../../src/common/stop.ts'

const STOP_TS = new URL('../../src/common/stop.ts', import.meta.url).href

function runModule(source: string) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', source], {
    encoding: 'utf8',
    timeout: 20_000
  })
}

test('a promise that never settles: top-level await of it exits 13, of settleWithin(it) exits 0', () => {
  const bare = runModule(`await new Promise(() => {}); console.log('after')`)
  assert.equal(bare.status, 13, bare.stderr)
  assert.doesNotMatch(bare.stdout, /after/)

  const bounded = runModule(
    `import { settleWithin } from ${JSON.stringify(STOP_TS)}
     console.log(await settleWithin(new Promise(() => {}), 50))`
  )
  assert.equal(bounded.status, 0, bounded.stderr)
  assert.equal(bounded.stdout.trim(), 'timed-out')
})

test('says how it ended, reports a failure or a timeout, never throws', async () => {
  const reports: string[] = []
  const report = (outcome: string, err?: unknown) =>
    reports.push(`${outcome}:${(err as Error)?.message ?? ''}`)
  assert.equal(await settleWithin(Promise.resolve(1), 1_000, report), 'settled')
  assert.equal(await settleWithin(Promise.reject(new Error('boom')), 1_000, report), 'failed')
  assert.equal(await settleWithin(new Promise(() => {}), 20, report), 'timed-out')
  assert.deepEqual(reports, ['failed:boom', 'timed-out:'])
})

test.run()
