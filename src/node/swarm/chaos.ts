// Faults while jobs run (`--chaos`), each at a point of the job count so a short run gets all:
//   kill   — kill -9 a random node, start it again on the same data dir a few seconds later
//            (it claims at start what it stored before it died);
//   pause  — SIGSTOP a node for longer than a job's deadline, then SIGCONT (clients time out
//            and fail over; the node finds its jobs expired when it wakes);
//   claim  — kill -9 a node right after it served a job, while the claim that payment triggered
//            (minClaim 1 wei: every payment claims at once) is in flight, and restart it.
// Clients see failures and fail over; reconciliation at the end shows nothing was lost.
import type { LocalSwarm, SwarmMember } from '../local-swarm.ts'
import type { JobOutcome } from './driver.ts'

export interface ChaosEvent {
  kind: 'kill' | 'restart' | 'pause' | 'resume' | 'claim-kill'
  node: number
  atMs: number
  note?: string
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

export class Chaos {
  readonly events: ChaosEvent[] = []
  private readonly swarm: LocalSwarm
  private readonly opts: ChaosOptions
  private readonly t0 = Date.now()
  private readonly pending: Promise<unknown>[] = []
  private readonly fired = new Set<string>()
  /** set when the claim fault waits for the next job served by a node it may kill */
  private claimArmed = false
  private readonly busy = new Set<SwarmMember>()

  constructor(swarm: LocalSwarm, opts: ChaosOptions) {
    this.swarm = swarm
    this.opts = opts
  }

  private note(kind: ChaosEvent['kind'], m: SwarmMember, note?: string): void {
    this.events.push({ kind, node: m.i, atMs: Date.now() - this.t0, ...(note ? { note } : {}) })
    this.opts.log(`chaos: ${kind} node ${m.i}${note ? ` (${note})` : ''}`)
  }

  /** A running node no other fault is using. */
  private victim(): SwarmMember | undefined {
    const ok = this.swarm.members.filter((m) => !m.exited && !this.busy.has(m))
    return ok.length === 0 ? undefined : ok[Math.floor(this.opts.rand() * ok.length)]
  }

  /** Called after every finished job (the driver's onJob). */
  onJob(o: JobOutcome, done: number): void {
    const at = (share: number) => done >= Math.max(1, Math.floor(this.opts.jobs * share))
    if (at(0.15)) this.once('kill', () => this.kill())
    if (at(0.35)) this.once('pause', () => this.pause())
    if (at(0.55)) this.once('claim', () => void (this.claimArmed = true))
    const t = this.swarm.members.find((m) => m.i === o.servedBy)
    if (this.claimArmed && o.ok && t && !t.exited && !this.busy.has(t)) {
      this.claimArmed = false
      this.track(this.killAndRestart(t, 'claim-kill', 'right after it served a job, its claim in flight'))
    }
  }

  private once(name: string, fn: () => void): void {
    if (this.fired.has(name)) return
    this.fired.add(name)
    fn()
  }

  private track(p: Promise<unknown>): void {
    this.pending.push(p.catch((err) => this.opts.log(`chaos: ${(err as Error).message}`)))
  }

  private kill(): void {
    const m = this.victim()
    if (m) this.track(this.killAndRestart(m, 'kill'))
  }

  private async killAndRestart(m: SwarmMember, kind: 'kill' | 'claim-kill', note?: string): Promise<void> {
    this.busy.add(m)
    try {
      m.child.kill('SIGKILL')
      this.note(kind, m, note)
      while (!m.exited) await new Promise((r) => setTimeout(r, 20))
      await new Promise((r) => setTimeout(r, this.opts.downMs))
      await this.swarm.restart(m)
      this.note('restart', m, 'same data dir')
    } finally {
      this.busy.delete(m)
    }
  }

  private pause(): void {
    const m = this.victim()
    if (!m) return
    this.busy.add(m)
    m.child.kill('SIGSTOP')
    this.note('pause', m, `SIGSTOP for ${this.opts.pauseMs} ms`)
    this.track(
      new Promise<void>((r) => setTimeout(r, this.opts.pauseMs)).then(() => {
        m.child.kill('SIGCONT')
        this.busy.delete(m)
        this.note('resume', m)
      })
    )
  }

  /** Resolves when every fault has ended (killed nodes restarted, paused ones resumed). */
  async settle(): Promise<void> {
    this.claimArmed = false
    while (this.pending.length > 0) await this.pending.shift()
  }
}
