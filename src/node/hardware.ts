// What this machine offers, for adverts: GPUs from nvidia-smi when it is installed, otherwise
// none; CPU model, cores and RAM from the OS. A config override (hardware.gpus) replaces the GPU
// list so tests and local swarms can pretend to have GPUs.
import { execFile } from 'node:child_process'
import { cpus, totalmem } from 'node:os'
import type { GpuInfo, Hardware } from '../serving/capability.ts'

/** nvidia-smi answers in well under a second; a hung driver must not hold up start. */
const NVIDIA_SMI_TIMEOUT_MS = 3_000

export function parseNvidiaSmi(csv: string): GpuInfo[] {
  const gpus: GpuInfo[] = []
  for (const line of csv.split('\n')) {
    const parts = line.split(',').map((s) => s.trim())
    if (parts.length < 3 || parts[0] === '') continue
    const memoryMb = Number.parseInt(parts[1]!, 10)
    gpus.push({
      name: parts[0]!.slice(0, 128),
      memoryMb: Number.isFinite(memoryMb) ? memoryMb : 0,
      driver: parts[2]!.slice(0, 128)
    })
  }
  return gpus.slice(0, 16)
}

export function detectGpus(): Promise<GpuInfo[]> {
  return new Promise((resolve) => {
    execFile(
      'nvidia-smi',
      ['--query-gpu=name,memory.total,driver_version', '--format=csv,noheader,nounits'],
      { timeout: NVIDIA_SMI_TIMEOUT_MS },
      (err, stdout) => resolve(err ? [] : parseNvidiaSmi(stdout))
    )
  })
}

export function cpuInfo(): Hardware['cpu'] {
  const list = cpus()
  return {
    model: (list[0]?.model ?? 'unknown').trim().slice(0, 128),
    cores: list.length,
    ramMb: Math.floor(totalmem() / (1024 * 1024))
  }
}

export async function detectHardware(opts: { detect: boolean; gpus: GpuInfo[] | null }): Promise<Hardware> {
  const gpus = opts.gpus ?? (opts.detect ? await detectGpus() : [])
  return { cpu: cpuInfo(), gpus }
}
