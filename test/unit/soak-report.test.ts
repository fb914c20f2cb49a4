// The soak's figures and its fault schedule (src/node/swarm/soak-report.ts, soak-chaos.ts) on
// made-up runs: minute buckets, first-token percentiles, lost payments, growth judged per process.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Hex } from 'viem'
import type { JobOutcome } from '../../src/node/swarm/driver.ts'
import {
  connectedGraph,
  type FaultRecord,
  faultRotation,
  faultTimes
} from '../../src/node/swarm/soak-chaos.ts'
import {
  describeFault,
  type ProcessSample,
  perMinute,
  perNode,
  worstOf
} from '../../src/node/swarm/soak-report.ts'

const job = (o: Partial<JobOutcome>): JobOutcome => ({
  jobId: null,
  ok: true,
  attempts: 1,
  failures: [],
  latencyMs: 100,
  ...o
})

test('perMinute: jobs, errors, relayed jobs, TTFT p50/p95/p99 and lost jobs land in their minute', () => {
  const jobs = [
    ...Array.from({ length: 100 }, (_, k) => ({
      t: 1_000 + k,
      o: job({ jobId: `0x${k.toString(16).padStart(32, '0')}` as Hex, ttftMs: k + 1, relayed: k < 10 })
    })),
    { t: 2_000, o: job({ ok: false, failures: ['DEADLINE_EXCEEDED', 'relayed:DialError'] }) },
    {
      t: 61_000,
      o: job({ ok: true, failures: ['PEER_UNREACHABLE', 'relayed:PEER_UNREACHABLE'], ttftMs: 500 })
    }
  ]
  const fault: FaultRecord = {
    kind: 'kill',
    nodes: [4],
    atMs: 65_000,
    healedAtMs: 70_000,
    recoveredAtMs: 71_000,
    recoveryMs: 1_000,
    recovered: true
  }
  const rows = perMinute({
    minutes: 2,
    jobs,
    up: [
      { t: 0, up: 5 },
      { t: 66_000, up: 4 },
      { t: 90_000, up: 5 }
    ],
    faults: [fault],
    lostJobs: [`0x${(7).toString(16).padStart(32, '0')}` as Hex]
  })
  assert.is(rows.length, 2)
  const [a, b] = rows as [(typeof rows)[0], (typeof rows)[0]]
  assert.is(a.jobsOk, 100)
  assert.is(a.jobsFailed, 1)
  assert.is(a.relayedOk, 10)
  assert.equal(a.errors, { DEADLINE_EXCEEDED: 1, 'relayed:DialError': 1 })
  assert.is(a.errorCount, 2)
  assert.is(a.unreachable, 0)
  assert.equal(a.ttftMs, { p50: 50, p95: 95, p99: 99 })
  assert.is(a.lostJobs, 1)
  assert.is(a.nodesUpMin, 5)
  assert.equal(a.faults, [])
  assert.is(b.jobsOk, 1)
  assert.equal(b.errors, { PEER_UNREACHABLE: 1, 'relayed:PEER_UNREACHABLE': 1 })
  assert.is(b.unreachable, 2, 'counted apart, direct and relayed')
  assert.is(b.ttftMs.p50, 500)
  assert.is(b.nodesUpMin, 4, 'the fewest nodes up in a sampling round of the minute')
  assert.is(b.lostJobs, 0)
  assert.equal(b.faults, ['kill node 4 at 65.0 s (recovered in 1.0 s)'])
})

test('describeFault says when a fault did not recover and why', () => {
  const f: FaultRecord = {
    kind: 'partition',
    nodes: [3, 4],
    atMs: 21_000,
    recovered: false,
    problem: 'node 3 lacks 2'
  }
  assert.is(describeFault(f), 'partition (nodes 3,4 cut off) at 21.0 s (NOT recovered: node 3 lacks 2)')
})

const samplesOf = (
  node: number,
  pid: number,
  from: number,
  to: number,
  rss: (t: number) => number
): ProcessSample[] =>
  Array.from({ length: (to - from) / 5_000 + 1 }, (_, k) => {
    const t = from + k * 5_000
    return { t, node, pid, rssMiB: rss(t), heapMiB: 50, handles: 30, fds: 50, connections: 4 }
  })

test('perNode judges growth on the last process of a node, over its own life; a late restart is shown, not judged', () => {
  const run = 300_000
  const samples = [
    // node 0: flat after warm-up
    ...samplesOf(0, 100, 0, run, (t) => (t < 100_000 ? 200 + t / 1_000 : 300)),
    // node 1: leaks 20 % from the middle third to the last
    ...samplesOf(1, 101, 0, run, (t) => (t < 200_000 ? 300 : 360)),
    // node 2: restarted late (its new process grows while warming): not judged
    ...samplesOf(2, 102, 0, 200_000, () => 300),
    ...samplesOf(2, 202, 205_000, run, (t) => 100 + (t - 205_000) / 100)
  ]
  const rows = perNode(samples, 3, run)
  assert.ok(rows[0]!.judged)
  assert.is(rows[0]!.rssGrowthPct, 0)
  assert.ok(rows[1]!.judged)
  assert.ok(Math.abs(rows[1]!.rssGrowthPct - 20) < 1e-9)
  assert.not.ok(rows[2]!.judged)
  assert.is(rows[2]!.pids, 2)
  assert.ok(rows[2]!.rssGrowthPct > 20, 'its figures are still computed (on the last process)')
  assert.ok(Math.abs(worstOf(rows, 'rssGrowthPct') - 20) < 1e-9, 'the restarted node does not count')
})

test('faults are spread over 10 %..85 % of the run, in the rotation kill, partition, relay', () => {
  assert.equal(faultTimes(60_000, 3), [6_000, 21_000, 36_000])
  assert.equal(faultRotation(2), ['kill', 'partition', 'relay', 'kill', 'partition', 'relay'])
  const t = faultTimes(600_000, 6)
  assert.is(t[0], 60_000)
  assert.ok(t.at(-1)! <= 510_000)
})

test('connectedGraph: a partition is two components until one edge crosses it', () => {
  const ids = ['a', 'b', 'c', 'd']
  const cut = new Map([
    ['a', ['b']],
    ['c', ['d']]
  ])
  assert.not.ok(connectedGraph(ids, cut))
  cut.set('d', ['b'])
  assert.ok(connectedGraph(ids, cut))
  assert.not.ok(connectedGraph([...ids, 'e'], cut), 'a node with no connection')
})

test.run()
