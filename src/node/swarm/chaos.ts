// Faults while jobs run (`--chaos`), one after another (never two nodes out at once, so a
// 3-node swarm always has a node to fail over to), each armed at a point of the job count:
//   kill   — at 15 %: kill -9 a random node, start it again on the same data dir a few seconds
//            later (it claims at start what it stored before it died);
//   pause  — at 35 %: SIGSTOP a node for longer than a job's deadline, then SIGCONT (clients
//            time out and fail over; the node finds those jobs expired when it wakes);
//   claim  — at 55 %: kill -9 the node that served the next successful job, right after it
//            stored that payment, while the claim it triggered (minClaim 1 wei: every payment
//            claims at once) is in flight, and restart it.
// A fault still armed when the jobs end runs then (settle()), so every run shows all three.
import type { LocalSwarm, SwarmMember } from '../local-swarm.ts'
import type { JobOutcome } from './driver.ts'

export interface ChaosEvent {
  /** partition, heal, relay-restart and recovered: the soak's timed faults (soak-chaos.ts) */
  kind:
    | 'kill'
    | 'restart'
    | 'pause'
    | 'resume'
    | 'claim-kill'
    | 'partition'
    | 'heal'
    | 'relay-restart'
    | 'recovered'
  node: number
  atMs: number
  note?: string
}

/** What the loop drives while jobs run: this file's Chaos (by job count) or the soak's TimedChaos. */
export interface FaultRunner {
  readonly events: ChaosEvent[]
  onJob(o: JobOutcome, done: number): void
  /** after the jobs: run or finish what is left, and wait for it */
  settle(): Promise<void>
}

export interface ChaosOptions {
  jobs: number
  /** how long a paused node stays stopped */
  pauseMs: number
  /** how long a killed node stays down */
  downMs: number
  rand: () => number
  log(msg: string): void
}

type Fault = 'kill' | 'pause' | 'claim'
const SCHEDULE: [Fault, number][] = [
  ['kill', 0.15],
  ['pause', 0.35],
  ['claim', 0.55]
]

export class Chaos implements FaultRunner {
  readonly events: ChaosEvent[] = []
  private readonly swarm: LocalSwarm
  private readonly opts: ChaosOptions
  private readonly t0 = Date.now()
  private readonly armed: Fault[] = []
  private readonly done = new Set<Fault>()
  /** the fault in progress (faults run one at a time) */
  private current: Promise<void> | undefined
  private jobsOver = false

  constructor(swarm: LocalSwarm, opts: ChaosOptions) {
    this.swarm = swarm
    this.opts = opts
  }

  private note(kind: ChaosEvent['kind'], m: SwarmMember, note?: string): void {
    this.events.push({ kind, node: m.i, atMs: Date.now() - this.t0, ...(note ? { note } : {}) })
    this.opts.log(`chaos: ${kind} node ${m.i}${note ? ` (${note})` : ''}`)
  }

  private victim(): SwarmMember | undefined {
    const up = this.swarm.members.filter((m) => !m.exited)
    return up.length === 0 ? undefined : up[Math.floor(this.opts.rand() * up.length)]
  }

  /** Called after every finished job (the driver's onJob). */
  onJob(o: JobOutcome, done: number): void {
    for (const [fault, share] of SCHEDULE)
      if (done >= Math.max(1, Math.floor(this.opts.jobs * share)) && !this.done.has(fault)) {
        if (!this.armed.includes(fault)) this.armed.push(fault)
      }
    if (this.current) return
    const next = this.armed[0]
    if (next === 'claim') {
      const m = this.swarm.members.find((x) => x.i === o.servedBy)
      if (!o.ok || !m || m.exited) return
      this.start(
        'claim',
        this.killAndRestart(m, 'claim-kill', 'right after it served a job, its claim in flight')
      )
    } else if (next === 'kill') {
      const m = this.victim()
      if (m) this.start('kill', this.killAndRestart(m, 'kill'))
    } else if (next === 'pause') {
      const m = this.victim()
      if (m) this.start('pause', this.pause(m))
    }
  }

  private start(fault: Fault, p: Promise<void>): void {
    this.armed.shift()
    this.done.add(fault)
    this.current = p
      .catch((err) => this.opts.log(`chaos: ${fault} failed: ${(err as Error).message}`))
      .finally(() => {
        this.current = undefined
      })
  }

  private async killAndRestart(m: SwarmMember, kind: 'kill' | 'claim-kill', note?: string): Promise<void> {
    m.child.kill('SIGKILL')
    this.note(kind, m, [note, this.jobsOver ? 'after the jobs' : ''].filter(Boolean).join(', '))
    while (!m.exited) await new Promise((r) => setTimeout(r, 20))
    await new Promise((r) => setTimeout(r, this.opts.downMs))
    await this.swarm.restart(m)
    this.note('restart', m, 'same data dir')
  }

  private async pause(m: SwarmMember): Promise<void> {
    m.child.kill('SIGSTOP')
    this.note('pause', m, `SIGSTOP for ${this.opts.pauseMs} ms${this.jobsOver ? ', after the jobs' : ''}`)
    await new Promise((r) => setTimeout(r, this.opts.pauseMs))
    m.child.kill('SIGCONT')
    this.note('resume', m)
  }

  /** After the jobs: runs the faults still armed or not reached, then waits for all to end. */
  async settle(): Promise<void> {
    this.jobsOver = true
    for (;;) {
      await this.current
      for (const [fault] of SCHEDULE)
        if (!this.done.has(fault) && !this.armed.includes(fault)) this.armed.push(fault)
      const next = this.armed[0]
      if (!next) return
      const m = this.victim()
      if (!m) return
      if (next === 'pause') this.start('pause', this.pause(m))
      else
        this.start(
          next,
          this.killAndRestart(
            m,
            next === 'kill' ? 'kill' : 'claim-kill',
            next === 'claim' ? 'while its last claims may run' : undefined
          )
        )
    }
  }
}
