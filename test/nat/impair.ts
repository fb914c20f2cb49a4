// Impaired home uplinks for the NAT tier, without netem. The project's kernels have no sch_netem
// (`tc qdisc add … netem` answers "Specified qdisc kind is unknown", there is no /lib/modules to
// load it from, and /proc/config.gz has NET_SCH_NETEM unset), so each impairment uses what the
// kernel does have:
//   - loss: nftables in the router, a netdev ingress chain on each of its links dropping a random
//     share of frames (`numgen random mod 10000 < N counter drop`; NFT_NUMGEN=y), so each
//     direction of the uplink loses that share independently, before NAT and conntrack see it;
//   - bandwidth: tc tbf (NET_SCH_TBF=y) on the router's egress both ways (wan: upload, lan:
//     download), a shaper that queues up to `latency` and drops beyond, as a modem does;
//   - latency: nothing in this kernel can hold a packet back (no netem, no sch_fq for BPF
//     departure times, no nft `queue`), so a home built with `delayMs` gets a user-space wire
//     (wire.py, two TAP devices) as its uplink instead of a veth: netns.ts.
import { execFileSync, spawnSync } from 'node:child_process'
import type { Home } from './netns.ts'

export interface Impairment {
  /** share of frames dropped in each direction, percent (0 to 50, two decimals) */
  lossPct?: number
  /** shaped rate in each direction, Mbit/s */
  rateMbit?: number
}

function inNs(ns: string, args: string[], input?: string): string {
  return execFileSync('ip', ['netns', 'exec', ns, ...args], {
    encoding: 'utf8',
    input,
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe']
  })
}

/** Impairs the link between a home's router and the internet, both ways. */
export function impairUplink(home: Home, imp: Impairment): void {
  const loss = imp.lossPct ?? 0
  if (!(loss >= 0 && loss <= 50)) throw new RangeError(`lossPct must be 0..50, got ${loss}`)
  const per10k = Math.round(loss * 100)
  // a table of its own, replaced as a whole: impairing again changes the share
  inNs(home.router, ['nft', '-f', '-'], `table netdev impair\ndelete table netdev impair\n`)
  if (per10k > 0) {
    const chain = (name: string, dev: string) => `  chain ${name} {
    type filter hook ingress device "${dev}" priority -500; policy accept;
    numgen random mod 10000 < ${per10k} counter drop
  }`
    inNs(
      home.router,
      ['nft', '-f', '-'],
      `table netdev impair {\n${chain('down', 'wan')}\n${chain('up', 'lan')}\n}\n`
    )
  }
  for (const dev of ['wan', 'lan']) {
    // no root qdisc yet is fine: the default is what it replaces
    spawnSync('ip', ['netns', 'exec', home.router, 'tc', 'qdisc', 'del', 'dev', dev, 'root'], {
      stdio: 'ignore'
    })
  }
  if (imp.rateMbit !== undefined) {
    if (!(imp.rateMbit > 0)) throw new RangeError(`rateMbit must be positive, got ${imp.rateMbit}`)
    for (const dev of ['wan', 'lan'])
      inNs(home.router, [
        'tc',
        'qdisc',
        'add',
        'dev',
        dev,
        'root',
        'tbf',
        'rate',
        `${imp.rateMbit}mbit`,
        'burst',
        '32kbit',
        'latency',
        '100ms'
      ])
  }
}

/** Frames the router's loss rules dropped so far: [downlink, uplink]. */
export function dropped(home: Home): [number, number] {
  const out = JSON.parse(inNs(home.router, ['nft', '-j', 'list', 'table', 'netdev', 'impair']))
  const count = (chain: string): number => {
    for (const x of out.nftables)
      if (x.rule?.chain === chain)
        for (const e of x.rule.expr) if (e.counter) return e.counter.packets as number
    return 0
  }
  return [count('down'), count('up')]
}
