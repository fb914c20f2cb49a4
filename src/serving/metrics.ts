// What the serving stack tells the node's registry (docs/METRICS.md): per job, its outcome, time
// to first token, inter-token latency, end-to-end latency and tokens, by model and (bounded)
// adapter; per scrape, each model's queue and batch, KV rows and LoRA slots in use, adapters by
// tier, and adapter loads/evictions from the stores' own counters.
import { codeOf } from '../common/errors.ts'
import type { NodeMetrics } from '../metrics/registry.ts'
import type { AdapterStoreStats } from '../runtime/adapters/types.ts'
import type { GenerateRequest, TokenEvent } from './backend.ts'

/** Wraps one job's events: observes them as they pass, changes nothing. */
export function observeJob(
  m: NodeMetrics,
  req: GenerateRequest,
  events: AsyncIterable<TokenEvent>
): AsyncIterable<TokenEvent> {
  const model = req.model
  const adapter = m.adapterLabel.of(req.adapter)
  const t0 = performance.now()
  let counted = false
  // counted when the job's outcome is known: at `done` before it is passed on (the result frame
  // and the client's next scrape may follow at once), else when the job ends otherwise
  const finish = (outcome: string): void => {
    if (counted) return
    counted = true
    m.requests.inc({ adapter, model, outcome })
    m.e2eLatency.observe({ model, outcome }, (performance.now() - t0) / 1000)
  }
  return {
    async *[Symbol.asyncIterator]() {
      let last: number | undefined
      try {
        for await (const ev of events) {
          if (ev.type === 'token') {
            const now = performance.now()
            if (last === undefined) m.timeToFirstToken.observe({ model }, (now - t0) / 1000)
            else m.interTokenLatency.observe({ model }, (now - last) / 1000)
            last = now
          } else if (ev.type === 'done') {
            m.promptTokens.inc({ adapter, model }, ev.promptIds.length)
            m.generationTokens.inc({ adapter, model }, ev.outputIds.length)
            finish('success')
          }
          yield ev
        }
      } catch (err) {
        finish(req.signal?.aborted ? 'cancelled' : (codeOf(err) ?? 'INTERNAL').toLowerCase())
        throw err
      } finally {
        finish('cancelled') // the consumer left the loop before `done` (client gone)
      }
    }
  }
}

/** A request refused before it ran (BUSY, a limit): counted with its code, no latency. */
export function observeRefused(m: NodeMetrics, req: GenerateRequest, err: unknown): void {
  m.requests.inc({
    adapter: m.adapterLabel.of(req.adapter),
    model: req.model,
    outcome: (codeOf(err) ?? 'INTERNAL').toLowerCase()
  })
}

export interface ServedView {
  loadByModel(): { model: string; queued: number; running: number; maxBatch: number }[]
  stores(): {
    model: string
    stats(): AdapterStoreStats
    tiers(): { hot: string[]; warm: string[]; cold: number }
  }[]
}

/** Fills the serving gauges at each scrape; counters follow the stores' counts by their increase. */
export function servingCollector(m: NodeMetrics, view: ServedView): () => void {
  const seen = new Map<string, { warm: number; hot: number }>()
  return () => {
    for (const l of view.loadByModel()) {
      m.requestsWaiting.set({ model: l.model }, l.queued)
      m.requestsRunning.set({ model: l.model }, l.running)
      // each running job holds one KV-cache row (sequence) of the model's maxBatch
      m.kvCacheUsage.set({ model: l.model }, l.maxBatch > 0 ? l.running / l.maxBatch : 0)
    }
    const tiers = { hot: 0, warm: 0, cold: 0 }
    for (const s of view.stores()) {
      const st = s.stats()
      const t = s.tiers()
      tiers.hot += t.hot.length
      tiers.warm += t.warm.length
      tiers.cold += Math.max(0, t.cold - t.hot.length - t.warm.length)
      m.slotPoolUsage.set({ model: s.model }, st.slots > 0 ? st.hot / st.slots : 0)
      const before = seen.get(s.model) ?? { warm: 0, hot: 0 }
      if (st.evictions.warm > before.warm)
        m.adapterEvictions.inc({ tier: 'warm' }, st.evictions.warm - before.warm)
      if (st.evictions.hot > before.hot)
        m.adapterEvictions.inc({ tier: 'hot' }, st.evictions.hot - before.hot)
      seen.set(s.model, { ...st.evictions })
    }
    for (const [tier, n] of Object.entries(tiers)) m.adapters.set({ tier }, n)
  }
}
