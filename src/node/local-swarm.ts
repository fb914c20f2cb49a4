// N `openlora start` processes on 127.0.0.1, each with its own data dir and OS-assigned ports,
// the first one the bootstrap peer of the rest. Used by `npm run swarm` and `bench:adverts
// --processes`. Each node's stderr (its JSON log) goes to <base>/node-<i>.log.
import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { adminRequest } from './admin.ts'
import type { PeersAnswer } from './admin-routes.ts'

const CLI = resolve(import.meta.dirname, 'cli', 'main.ts')
/** SIGTERM gives a node 5 s to stop cleanly (its own stop is bounded well under that). */
const STOP_GRACE_MS = 6_000

export interface SwarmMember {
  i: number
  dir: string
  child: ChildProcess
  peerId?: string
  addrs: string[]
  exited: boolean
}

export interface LocalSwarmOptions {
  base: string
  /** extra `--set KEY=VALUE` for every node */
  set?: string[]
  /** extra `--set KEY=VALUE` for node i only (simulated hardware, price, …) */
  setFor?: (i: number) => string[]
  mdns?: boolean
}

export type { PeersAnswer }

export class LocalSwarm {
  readonly members: SwarmMember[] = []
  /** every process this swarm started, restarts included (tests check none is left) */
  readonly pids: number[] = []
  readonly #opts: LocalSwarmOptions
  #stopping?: Promise<void>

  constructor(opts: LocalSwarmOptions) {
    this.#opts = opts
  }

  /** Starts node i and resolves once it printed its `started` line. */
  spawnNode(i: number, bootstrap?: string): Promise<SwarmMember> {
    const m = {
      i,
      dir: join(this.#opts.base, `node-${i}`),
      addrs: [],
      exited: false
    } as unknown as SwarmMember
    this.members.push(m)
    return this.#launch(m, bootstrap)
  }

  /**
   * Starts a member again on its own data dir (after it exited, e.g. a kill -9), joined through
   * another running member; its ports are new, its peer id and stored state are the same.
   */
  restart(m: SwarmMember, opts: { samePorts?: boolean } = {}): Promise<SwarmMember> {
    if (!m.exited) throw new Error(`node ${m.i} is still running`)
    if (this.#stopping) throw new Error(`the swarm is stopping; node ${m.i} stays down`)
    const boot = this.members
      .find((o) => o !== m && !o.exited)
      ?.addrs.find((a) => a.includes('/tcp/') && !a.includes('/ws'))
    // samePorts: a relay comes back where its clients' bootstrap lists say it is, as a real one does
    const port = (ws: boolean) =>
      m.addrs
        .filter((a) => !a.includes('/p2p-circuit') && a.includes('/ws') === ws)
        .map((a) => /\/tcp\/(\d+)/.exec(a)?.[1])
        .find((p) => p !== undefined) ?? '0'
    return this.#launch(m, boot, opts.samePorts ? [port(false), port(true)] : undefined)
  }

  #launch(m: SwarmMember, bootstrap?: string, ports: [string, string] = ['0', '0']): Promise<SwarmMember> {
    const { i, dir } = m
    const args = [CLI, 'start', '--data-dir', dir, '--listen', `/ip4/127.0.0.1/tcp/${ports[0]}`]
    args.push(
      '--gateway-port',
      '0',
      '--listen',
      `/ip4/127.0.0.1/tcp/${ports[1]}/ws`,
      '--set',
      'log.format=json'
    )
    for (const kv of [...(this.#opts.set ?? []), ...(this.#opts.setFor?.(i) ?? [])]) args.push('--set', kv)
    if (!this.#opts.mdns) args.push('--no-mdns')
    if (bootstrap) args.push('--bootstrap', bootstrap)
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    m.child = child
    if (child.pid !== undefined) this.pids.push(child.pid)
    m.exited = false
    m.addrs = []
    const logFile = join(this.#opts.base, `node-${i}.log`)
    // appended: a restarted node's log follows the log of its previous run
    child.stderr!.pipe(createWriteStream(logFile, { flags: 'a' }))
    child.on('exit', () => {
      m.exited = true
    })
    return new Promise((resolvePromise, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        try {
          const ev = JSON.parse(line) as { event?: string; peerId: string; addrs: string[] }
          if (ev.event !== 'started') return
          m.peerId = ev.peerId
          m.addrs = ev.addrs
          resolvePromise(m)
        } catch {}
      })
      child.on('exit', (code) =>
        reject(new Error(`node ${i} exited with code ${code} before starting (log: ${logFile})`))
      )
    })
  }

  /** Node 0 first, then the rest at once, all joined through node 0's TCP address. */
  async start(n: number): Promise<void> {
    const first = await this.spawnNode(0)
    const boot = first.addrs.find((a) => a.includes('/tcp/') && !a.includes('/ws'))
    await Promise.all(Array.from({ length: n - 1 }, (_, k) => this.spawnNode(k + 1, boot)))
  }

  /** Every node's /peers answer (null for a node that does not answer). */
  async poll(timeoutMs = 2_000): Promise<Map<SwarmMember, PeersAnswer | null>> {
    const out = new Map<SwarmMember, PeersAnswer | null>()
    await Promise.all(
      this.members.map(async (m) => {
        out.set(m, await adminRequest<PeersAnswer>(m.dir, '/peers', timeoutMs).catch(() => null))
      })
    )
    return out
  }

  /** Descriptions of nodes whose table lacks some other node ([] = converged). */
  laggards(state: Map<SwarmMember, PeersAnswer | null>): string[] {
    const ids = this.members.map((m) => m.peerId!)
    const out: string[] = []
    for (const m of this.members) {
      const seen = new Set(state.get(m)?.table.map((t) => t.peerId) ?? [])
      const missing = ids.filter((id) => id !== m.peerId && !seen.has(id))
      if (missing.length > 0)
        out.push(
          `node ${m.i} (${m.peerId}) lacks ${missing.length}: ${missing.map((x) => x.slice(-8)).join(',')}`
        )
    }
    return out
  }

  /** SIGTERM to all, SIGKILL to any still running after the grace period. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      for (const m of this.members) if (!m.exited) m.child.kill('SIGTERM')
      const until = Date.now() + STOP_GRACE_MS
      while (this.members.some((m) => !m.exited) && Date.now() < until)
        await new Promise((r) => setTimeout(r, 50))
      for (const m of this.members) if (!m.exited) m.child.kill('SIGKILL')
    })()
    return this.#stopping
  }
}
