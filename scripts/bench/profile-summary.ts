// Reads an ONNX Runtime profile (the Chrome-trace JSON a session writes with enableProfiling,
// LoadModelOptions.profile) and sums it per run: kernels launched per run and time per op type.
// ORT records each run as a Session event `model_run` and each kernel as a Node event
// `<node>_kernel_time` (with `_fence_before/after` markers around it, not counted); a kernel
// belongs to the run whose [ts, ts + dur] holds its start.

export interface ProfileEvent {
  cat: string
  name: string
  ts: number
  dur: number
  args?: { op_name?: string }
}

export interface RunSummary {
  /** µs of the whole run */
  us: number
  kernels: number
  /** op type → { kernels, µs } */
  ops: Map<string, { kernels: number; us: number }>
}

export function summariseRuns(events: readonly ProfileEvent[]): RunSummary[] {
  const runs = events
    .filter((e) => e.cat === 'Session' && e.name === 'model_run')
    .sort((a, b) => a.ts - b.ts)
    .map((e) => ({
      start: e.ts,
      end: e.ts + e.dur,
      sum: { us: e.dur, kernels: 0, ops: new Map() } as RunSummary
    }))
  const kernels = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'))
  for (const k of kernels) {
    const run = runs.find((r) => k.ts >= r.start && k.ts <= r.end)
    if (!run) continue
    const op = k.args?.op_name ?? '?'
    const o = run.sum.ops.get(op) ?? { kernels: 0, us: 0 }
    o.kernels++
    o.us += k.dur
    run.sum.ops.set(op, o)
    run.sum.kernels++
  }
  return runs.map((r) => r.sum)
}

/** The mean of several runs (e.g. every decode step): per-step kernels, µs and op table. */
export function meanOfRuns(runs: readonly RunSummary[]): {
  steps: number
  kernelsPerStep: number
  usPerStep: number
  ops: { op: string; kernelsPerStep: number; usPerStep: number; share: number }[]
} {
  const n = Math.max(1, runs.length)
  const ops = new Map<string, { kernels: number; us: number }>()
  let us = 0
  let kernels = 0
  for (const r of runs) {
    us += r.us
    kernels += r.kernels
    for (const [op, v] of r.ops) {
      const o = ops.get(op) ?? { kernels: 0, us: 0 }
      o.kernels += v.kernels
      o.us += v.us
      ops.set(op, o)
    }
  }
  const kernelUs = [...ops.values()].reduce((a, o) => a + o.us, 0) || 1
  return {
    steps: runs.length,
    kernelsPerStep: Math.round((kernels / n) * 10) / 10,
    usPerStep: Math.round(us / n),
    ops: [...ops]
      .map(([op, o]) => ({
        op,
        kernelsPerStep: Math.round((o.kernels / n) * 10) / 10,
        usPerStep: Math.round(o.us / n),
        share: Math.round((o.us / kernelUs) * 1000) / 1000
      }))
      .sort((a, b) => b.usPerStep - a.usPerStep)
  }
}
