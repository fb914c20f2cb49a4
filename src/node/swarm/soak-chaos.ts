// Faults on a clock, for the timed soak (scripts/soak.ts; `npm run swarm -- --chaos` arms its
// faults by job count instead, chaos.ts). One fault at a time, in rotation, spread over the run:
//   kill      — kill -9 a serving node, start it again on the same data dir `downMs` later;
//   partition — cut the swarm in two for `partitionMs`: each side's nodes ban the other side's
//               peers by hand (admin POST /peers/block: the connection gater refuses them both
//               ways and the node hangs up), then lift the bans (POST /peers/unblock);
//   relay     — restart the circuit relay (SIGTERM, then the same data dir on the same ports, as
//               an operator upgrading it does); the nodes that held a reservation on it re-make it.
// After each fault heals, the swarm must recover within `recoverTimeoutMs`: every node answers,
// every node's PeerTable lists every other node, the nodes' direct connections form one
// connected graph again, and as many nodes hold a reservation on the relay as before the fault.
// Each fault's record says when it began, healed and recovered (or that it never did).
import { adminRequest } from '../admin.ts'
import type { LocalSwarm, PeersAnswer, SwarmMember } from '../local-swarm.ts'
import type { ChaosEvent } from './chaos.ts'

export type TimedFault = 'kill' | 'partition' | 'relay'
export const TIMED_FAULTS: readonly TimedFault[] = ['kill', 'partition', 'relay']

export interface TimedChaosOptions {
  /** how long jobs run: faults start from 10 % of it and are spread to 85 % */
  durationMs: number
  /** faults in the order they run (a rotation of TIMED_FAULTS, once per round) */
  faults: TimedFault[]
  /** the node killed by `kill` (a node that serves jobs) */
  killVictim: number
  /** the node that is the circuit relay (restarted by `relay`) */
  relay: number
  partitionMs: number
  downMs: number
  recoverTimeoutMs: number
  /** the clock's zero (Date.now()): the caller's, so its records and the caller's line up */
  t0?: number
  log(msg: string): void
}

export interface FaultRecord {
  kind: TimedFault
  /** nodes it hit (the partition: the smaller side) */
  nodes: number[]
  atMs: number
  healedAtMs?: number
  recoveredAtMs?: number
  /** healed → recovered, ms */
  recoveryMs?: number
  recovered: boolean
  /** why it did not recover (what still lagged when the wait ended) */
  problem?: string
  /** nodes holding a relay reservation before the fault / after recovery */
  reservations?: { before: number; after: number }
}

/** Fault start times (ms after the jobs started): spread evenly over 10 %..85 % of the run. */
export function faultTimes(durationMs: number, count: number): number[] {
  return Array.from({ length: count }, (_, k) => Math.round(durationMs * (0.1 + (0.75 * k) / count)))
}

/** The rotation for `rounds` rounds: kill, partition, relay, kill, … */
export function faultRotation(rounds: number): TimedFault[] {
  return Array.from({ length: rounds }, () => [...TIMED_FAULTS]).flat()
}

/** Is the graph of nodes (edges: direct connections either way) connected? */
export function connectedGraph(ids: string[], edges: Map<string, string[]>): boolean {
  if (ids.length === 0) return true
  const want = new Set(ids)
  const seen = new Set([ids[0]!])
  const stack = [ids[0]!]
  while (stack.length > 0) {
    const at = stack.pop()!
    for (const [a, bs] of edges)
      for (const b of bs) {
        const other = a === at ? b : b === at ? a : undefined
        if (other !== undefined && want.has(other) && !seen.has(other)) {
          seen.add(other)
          stack.push(other)
        }
      }
  }
  return seen.size === want.size
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export class TimedChaos {
  readonly events: ChaosEvent[] = []
  readonly records: FaultRecord[] = []
  readonly scheduled: number
  readonly #swarm: LocalSwarm
  readonly #opts: TimedChaosOptions
  readonly #t0: number
  readonly #loop: Promise<void>
  #stopped = false
  #wake: (() => void) | undefined

  constructor(swarm: LocalSwarm, opts: TimedChaosOptions) {
    this.#swarm = swarm
    this.#opts = opts
    this.#t0 = opts.t0 ?? Date.now()
    this.scheduled = opts.faults.length
    this.#loop = this.#run().catch((err) => opts.log(`chaos: stopped by ${(err as Error).message}`))
  }

  #now(): number {
    return Date.now() - this.#t0
  }

  #note(kind: ChaosEvent['kind'], node: number, note?: string): void {
    this.events.push({ kind, node, atMs: this.#now(), ...(note ? { note } : {}) })
    this.#opts.log(`chaos: ${kind} node ${node}${note ? ` (${note})` : ''}`)
  }

  /** The soak's loop calls this for every finished job; faults here run on the clock. */
  onJob(): void {}

  /** Jobs are over: no new fault starts; waits for the one in progress to heal and recover. */
  async settle(): Promise<void> {
    this.#stopped = true
    this.#wake?.()
    await this.#loop
  }

  async #run(): Promise<void> {
    const times = faultTimes(this.#opts.durationMs, this.#opts.faults.length)
    for (const [k, kind] of this.#opts.faults.entries()) {
      const wait = times[k]! - this.#now()
      if (wait > 0)
        await new Promise<void>((r) => {
          const timer = setTimeout(r, wait)
          this.#wake = () => {
            clearTimeout(timer)
            r()
          }
        })
      if (this.#stopped) return
      const before = await this.#reservations()
      // a relay restart nobody was reserved on would test nothing
      if (kind === 'relay' && before === 0)
        this.#opts.log('chaos: no node holds a relay reservation before the relay restart')
      const rec: FaultRecord = { kind, nodes: [], atMs: this.#now(), recovered: false }
      this.records.push(rec)
      try {
        if (kind === 'kill') await this.#kill(rec)
        else if (kind === 'partition') await this.#partition(rec)
        else await this.#restartRelay(rec)
      } catch (err) {
        rec.problem = `the fault itself failed: ${(err as Error).message}`
      }
      rec.healedAtMs = this.#now()
      await this.#recover(rec, before)
    }
  }

  #member(i: number): SwarmMember {
    const m = this.#swarm.members.find((x) => x.i === i)
    if (!m) throw new Error(`no node ${i} in the swarm`)
    return m
  }

  async #kill(rec: FaultRecord): Promise<void> {
    const m = this.#member(this.#opts.killVictim)
    rec.nodes = [m.i]
    m.child.kill('SIGKILL')
    this.#note('kill', m.i, 'kill -9 while serving')
    while (!m.exited) await sleep(20)
    await sleep(this.#opts.downMs)
    await this.#swarm.restart(m)
    this.#note('restart', m.i, 'same data dir')
  }

  async #partition(rec: FaultRecord): Promise<void> {
    const all = this.#swarm.members.filter((m) => !m.exited)
    const half = Math.floor(all.length / 2)
    // the relay's side is the larger one: a partition also cuts the smaller side from its relay
    const a = all.filter((m) => m.i === this.#opts.relay).concat(all.filter((m) => m.i !== this.#opts.relay))
    const sideA = a.slice(0, all.length - half)
    const sideB = a.slice(all.length - half)
    rec.nodes = sideB.map((m) => m.i)
    const ids = (ms: SwarmMember[]) => ms.map((m) => m.peerId!)
    // the ban outlasts the partition, so a lost unblock would show as a failed recovery
    const ms = this.#opts.partitionMs + this.#opts.recoverTimeoutMs
    const cut = async (from: SwarmMember[], others: SwarmMember[], path: string) => {
      await Promise.all(
        from.map((m) =>
          adminRequest(
            m.dir,
            path,
            5_000,
            path.endsWith('/block') ? { peers: ids(others), ms } : { peers: ids(others) }
          )
        )
      )
    }
    await Promise.all([cut(sideA, sideB, '/peers/block'), cut(sideB, sideA, '/peers/block')])
    this.#note(
      'partition',
      sideB[0]!.i,
      `nodes ${sideA.map((m) => m.i).join(',')} | ${sideB.map((m) => m.i).join(',')} for ${this.#opts.partitionMs} ms`
    )
    await sleep(this.#opts.partitionMs)
    await Promise.all([cut(sideA, sideB, '/peers/unblock'), cut(sideB, sideA, '/peers/unblock')])
    this.#note('heal', sideB[0]!.i, 'bans lifted')
  }

  async #restartRelay(rec: FaultRecord): Promise<void> {
    const m = this.#member(this.#opts.relay)
    rec.nodes = [m.i]
    m.child.kill('SIGTERM')
    this.#note('relay-restart', m.i, 'SIGTERM, then the same data dir and ports')
    for (let waited = 0; !m.exited; waited += 20) {
      if (waited > 8_000) m.child.kill('SIGKILL')
      await sleep(20)
    }
    await this.#swarm.restart(m, { samePorts: true })
    this.#note('restart', m.i, 'relay back on its ports')
  }

  /** Nodes (other than the relay) holding a reservation on the relay now. */
  async #reservations(): Promise<number> {
    const relay = this.#swarm.members.find((m) => m.i === this.#opts.relay)
    if (!relay?.peerId) return 0
    const held = await Promise.all(
      this.#swarm.members
        .filter((m) => m !== relay && !m.exited)
        .map(async (m) => {
          // a node slow to answer on a loaded machine is asked once more before it counts as none
          for (let k = 0; k < 2; k++) {
            const s = await adminRequest<{ relays: string[] }>(m.dir, '/status', 5_000).catch(() => null)
            if (s) return s.relays.includes(relay.peerId!)
          }
          return false
        })
    )
    return held.filter(Boolean).length
  }

  async #recover(rec: FaultRecord, reservationsBefore: number): Promise<void> {
    const until = Date.now() + this.#opts.recoverTimeoutMs
    let problem = ''
    for (;;) {
      problem = await this.#lagging(reservationsBefore)
      if (problem === '') break
      if (Date.now() > until) {
        rec.problem =
          (rec.problem ? `${rec.problem}; ` : '') +
          `not recovered after ${this.#opts.recoverTimeoutMs} ms: ${problem}`
        this.#opts.log(`chaos: ${rec.kind} ${rec.problem}`)
        return
      }
      await sleep(500)
    }
    rec.recoveredAtMs = this.#now()
    rec.recoveryMs = rec.recoveredAtMs - (rec.healedAtMs ?? rec.atMs)
    rec.recovered = rec.problem === undefined
    if (rec.kind === 'relay' && reservationsBefore === 0) {
      rec.recovered = false
      rec.problem = 'no node held a reservation on the relay before it restarted'
    }
    rec.reservations = { before: reservationsBefore, after: await this.#reservations() }
    this.#note('recovered', rec.nodes[0] ?? -1, `${rec.kind}, ${rec.recoveryMs} ms after it healed`)
  }

  /** What still keeps the swarm from having recovered ('' = nothing). */
  async #lagging(reservationsBefore: number): Promise<string> {
    const down = this.#swarm.members.filter((m) => m.exited)
    if (down.length > 0) return `node ${down.map((m) => m.i).join(',')} down`
    const state: Map<SwarmMember, PeersAnswer | null> = await this.#swarm.poll()
    const silent = [...state].filter(([, a]) => a === null).map(([m]) => m.i)
    if (silent.length > 0) return `node ${silent.join(',')} does not answer`
    const lag = this.#swarm.laggards(state)
    if (lag.length > 0) return lag.join('; ')
    const ids = this.#swarm.members.map((m) => m.peerId!)
    const edges = new Map(
      [...state].map(([m, a]) => [
        m.peerId!,
        a!.connections.filter((c) => c.type === 'direct').map((c) => c.peerId)
      ])
    )
    if (!connectedGraph(ids, edges)) return 'the nodes are not one connected graph yet'
    const held = await this.#reservations()
    if (held < reservationsBefore) return `${held} of ${reservationsBefore} relay reservations back`
    return ''
  }
}
