// `bench:adverts --processes`: the same question with one OS process per node (LocalSwarm, the
// `npm run swarm` launcher). Updates are the nodes' own heartbeats (adverts.heartbeatMs lowered);
// each receiver's PeerTable records when it stored an advert, and the advert carries when it was
// signed (`ts`), both from this machine's one clock, so receivedAt − ts is the delivery time.
// Samples are read by polling every node's admin endpoint; an advert superseded at a receiver
// before a poll saw it is left out (unobserved), never counted as missed.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalSwarm } from '../../src/node/local-swarm.ts'

const HEARTBEAT_MS = 2_000
const POLL_MS = 150

export interface ProcessRun {
  reachAll: number[]
  deliveries: number[]
  startupMs: number
  convergedMs: number
  peersPerNode: number[]
  unobserved: number
}

export async function runProcesses(
  n: number,
  samples: number,
  say: (s: string) => void
): Promise<ProcessRun> {
  const base = mkdtempSync(join(tmpdir(), 'openlora-bench-adverts-p-'))
  const swarm = new LocalSwarm({
    base,
    set: [
      'hardware.detect=false',
      `adverts.heartbeatMs=${HEARTBEAT_MS}`,
      'adverts.debounceMs=0',
      'log.level=warn'
    ]
  })
  try {
    const t0 = Date.now()
    await swarm.start(n)
    const startupMs = Date.now() - t0
    for (;;) {
      const state = await swarm.poll()
      const lag = swarm.laggards(state)
      if (lag.length === 0) break
      if (Date.now() - t0 - startupMs > 180_000) {
        const silent = [...state].filter(([, a]) => a === null).map(([m]) => m.i)
        const alone = [...state].filter(([, a]) => a !== null && a.connections.length === 0).map(([m]) => m.i)
        throw new Error(
          `swarm did not converge within 180 s of start-up (not answering: [${silent}], no connections: [${alone}]); laggards:\n  ${lag.join('\n  ')}`
        )
      }
      await new Promise((r) => setTimeout(r, 200))
    }
    const convergedMs = Date.now() - t0
    say(`${n} node processes: started in ${startupMs} ms, converged at ${convergedMs} ms`)
    // settle (dialer, meshes), and let every node heartbeat once past the settling
    await new Promise((r) => setTimeout(r, 3_000 + HEARTBEAT_MS))
    const from = Date.now()
    // origin|seq → receiver → delivery ms
    const seen = new Map<string, Map<string, number>>()
    const done = new Set<string>()
    const reachAll: number[] = []
    const deliveries: number[] = []
    const until = Date.now() + Math.max(60_000, (samples / n) * HEARTBEAT_MS * 4)
    while (reachAll.length < samples && Date.now() < until) {
      const state = await swarm.poll()
      for (const [m, ans] of state) {
        for (const row of ans?.table ?? []) {
          if (row.ts < from) continue
          const key = `${row.peerId}|${row.seq}`
          if (done.has(key)) continue
          let r = seen.get(key)
          if (!r) seen.set(key, (r = new Map()))
          r.set(m.peerId!, row.receivedAt - row.ts)
          if (r.size === n - 1) {
            done.add(key)
            deliveries.push(...r.values())
            reachAll.push(Math.max(...r.values()))
          }
        }
      }
      await new Promise((res) => setTimeout(res, POLL_MS))
    }
    const last = await swarm.poll()
    return {
      reachAll,
      deliveries,
      startupMs,
      convergedMs,
      peersPerNode: [...last.values()].map((a) => new Set(a?.connections.map((c) => c.peerId)).size),
      unobserved: seen.size - done.size
    }
  } finally {
    await swarm.stop()
    rmSync(base, { recursive: true, force: true })
  }
}
