// The `machine` block every benchmark's JSON report opens with (docs BENCHMARKS conventions), read
// from this host rather than typed in: a hard-coded ORT version goes stale on the next upgrade.
import { createRequire } from 'node:module'
import { cpus } from 'node:os'

export interface BenchMachine {
  cpu: string
  cores: number
  node: string
  ort: string | null
  gpu: null
  [extra: string]: unknown
}

/** The installed onnxruntime-node version, or null when it cannot be read. */
export function ortVersion(): string | null {
  try {
    return (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version
  } catch {
    return null
  }
}

/** cpu, cores, node and ORT versions of this host; `extra` adds tool versions a bench depends on. */
export function benchMachine(opts: { ort?: boolean; extra?: Record<string, unknown> } = {}): BenchMachine {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    node: process.version,
    ort: opts.ort === false ? null : ortVersion(),
    gpu: null,
    ...opts.extra
  }
}
