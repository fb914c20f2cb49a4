// NAT traversal, measured across real NATs in network namespaces (test/nat/netns.ts; root only):
// a relay on a public-looking "internet", a public serving node, home B behind an
// endpoint-independent NAT and home C behind a symmetric one, and a client in home A (also
// endpoint-independent). Real `openlora start` processes; each job is a real infer job with a
// verified receipt.
//
//   npm run bench:nat -- [--jobs 50] [--delay-ms 20] [--quick] [--json]
//
// - job success home → home, per NAT kind (A → B friendly, A → C symmetric), and which
//   connection each job ran on; hole-punch success = share of fresh clients (one punch each)
//   whose first job to B ran direct;
// - time to first token relayed (A → C through the relay) ÷ direct (A → the public node), with
//   a delay on every uplink (test/nat/wire.py: these kernels lack netem), jobs interleaved A→C,
//   A→pub so drift hits both alike;
// - recovery after the relay restarts: from the restarted relay's "started" line to the first
//   job that succeeds again (the client retries meanwhile).
import { setTimeout as sleep } from 'node:timers/promises'
import { buildCast, type Cast, jobsFrom, PORT, PUBLIC_IP, restartRelay } from '../../test/nat/fixture.ts'
import { setDelay } from '../../test/nat/netns.ts'
import { stopNode } from '../../test/nat/nodes.ts'
import { benchArgs } from './args.ts'
import { benchMachine } from './machine.ts'

const values = benchArgs('npm run bench:nat -- [--jobs 50] [--delay-ms 20] [--quick] [--json]', {
  jobs: { type: 'string', default: '50' },
  'delay-ms': { type: 'string', default: '20' },
  quick: { type: 'boolean' },
  json: { type: 'boolean' }
})
const JOBS = values.quick ? 10 : Number(values.jobs)
const DELAY = Number(values['delay-ms'])

function median(xs: number[]): number | null {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

function say(msg: string): void {
  if (!values.json) console.log(msg)
}

async function run(cast: Cast) {
  const nsA = cast.topo.homes.find((h) => h.name === 'A')!.ns
  const B = cast.homes.get('B')!.node.peerId
  const C = cast.homes.get('C')!.node.peerId
  // homes settle: reservations made, adverts out
  await sleep(8_000)

  say(`${JOBS} jobs A → B (endpoint-independent NAT) …`)
  const friendly = (await jobsFrom(cast, nsA, B, { count: JOBS })).outcomes
  say(`${JOBS} jobs A → C (symmetric NAT) …`)
  const symmetric = (await jobsFrom(cast, nsA, C, { count: JOBS })).outcomes
  const kind = (os: typeof friendly) => ({
    jobs: os.length,
    ok: os.filter((o) => o.ok).length,
    direct: os.filter((o) => o.ok && o.connection === 'direct').length,
    relayed: os.filter((o) => o.ok && o.connection === 'relayed').length,
    errors: [...new Set(os.filter((o) => !o.ok).map((o) => o.error))].slice(0, 5)
  })

  // hole punching happens once per client and peer: count fresh clients whose first job ran direct
  const PUNCHES = values.quick ? 5 : 20
  say(`${PUNCHES} fresh clients A → B (one hole punch each) …`)
  let punched = 0
  for (let i = 0; i < PUNCHES; i++) {
    const o = (await jobsFrom(cast, nsA, B, { count: 1 })).outcomes[0]!
    if (o.ok && o.connection === 'direct') punched++
  }

  say(`TTFT with ${DELAY} ms per uplink each way, interleaved relayed / direct …`)
  const delayed = setDelay(cast.topo, DELAY)
  if (!delayed) say(`  no way to delay here: measured without the ${DELAY} ms delay`)
  const relayedTtft: number[] = []
  const directTtft: number[] = []
  const rounds = Math.max(3, Math.floor(JOBS / 10))
  for (let i = 0; i < rounds; i++) {
    // each run: one connection set-up job, then jobs on the warm connection (TTFT of those)
    // relayed: to C, whose symmetric NAT keeps it on the relay (B goes direct by hole punching)
    const rel = (await jobsFrom(cast, nsA, C, { count: 6 })).outcomes.slice(1)
    const dir = (
      await jobsFrom(cast, nsA, cast.pub.peerId, {
        count: 6,
        addr: `/ip4/${PUBLIC_IP}/tcp/${PORT}/p2p/${cast.pub.peerId}`
      })
    ).outcomes.slice(1)
    relayedTtft.push(...rel.filter((o) => o.ok && o.connection === 'relayed').map((o) => o.ttftMs!))
    directTtft.push(...dir.filter((o) => o.ok && o.connection === 'direct').map((o) => o.ttftMs!))
  }
  setDelay(cast.topo, 0)

  say('relay restart …')
  await stopNode(cast.relay)
  const retrying = jobsFrom(cast, nsA, B, { retryUntilMs: 60_000 })
  // let the client load and start retrying against the stopped relay first
  await sleep(3_000)
  await restartRelay(cast)
  const relayBackAt = Date.now()
  const after = (await retrying).outcomes[0]!
  const recoveryMs = after.ok ? after.doneAt - relayBackAt : null

  const rMed = median(relayedTtft)
  const dMed = median(directTtft)
  const ratio = rMed !== null && dMed !== null && dMed > 0 ? rMed / dMed : null
  const f = kind(friendly)
  const s = kind(symmetric)
  return {
    results: {
      friendly: f,
      symmetric: s,
      holePunch: { attempts: PUNCHES, direct: punched, rate: punched / PUNCHES },
      ttft: {
        relayedP50Ms: rMed,
        directP50Ms: dMed,
        relayedSamples: relayedTtft.length,
        directSamples: directTtft.length,
        ratio,
        delayApplied: delayed
      },
      relayRestart: { recovered: after.ok, recoveryMs, error: after.error }
    },
    goals: [
      {
        name: 'job_success_friendly',
        value: f.ok / f.jobs,
        target: '= 1.0 (100 % of 50)',
        met: f.ok === f.jobs
      },
      {
        name: 'job_success_symmetric',
        value: s.ok / s.jobs,
        target: '= 1.0 (100 % of 50)',
        met: s.ok === s.jobs
      },
      {
        name: 'hole_punch_success_friendly',
        value: punched / PUNCHES,
        target: '>= 0.95',
        met: punched / PUNCHES >= 0.95
      },
      {
        name: 'ttft_relayed_over_direct',
        value: ratio,
        target: delayed
          ? '<= 1.5'
          : `<= 1.5 (with ${DELAY} ms per uplink; no delay possible here: measured without)`,
        met: ratio !== null && ratio <= 1.5
      },
      {
        name: 'relay_restart_recovery_ms',
        value: recoveryMs,
        target: '<= 10000',
        met: recoveryMs !== null && recoveryMs <= 10_000
      }
    ]
  }
}

const cast = await buildCast(
  [
    { name: 'A', nat: 'friendly', serve: false },
    { name: 'B', nat: 'friendly', serve: true },
    { name: 'C', nat: 'symmetric', serve: true }
  ],
  // every uplink a user-space wire (test/nat/wire.py): the delay per hop without netem
  { publicServes: true, wired: true }
)
try {
  const { results, goals } = await run(cast)
  const out = {
    bench: 'nat',
    machine: benchMachine(),
    config: {
      jobsPerKind: JOBS,
      delayMsPerUplinkEachWay: DELAY,
      delayBy: 'user-space TAP wire per uplink (test/nat/wire.py)',
      maxNewTokens: 8,
      transports: 'tcp + circuit relay v2 + dcutr',
      nat: { A: 'masquerade', B: 'masquerade', C: 'masquerade fully-random' }
    },
    results,
    goals
  }
  if (values.json) console.log(JSON.stringify(out))
  else {
    console.log(JSON.stringify(results, null, 2))
    for (const g of goals) console.log(`${g.met ? 'met    ' : 'NOT MET'} ${g.name}: ${g.value} (${g.target})`)
  }
} finally {
  await cast.close()
}
