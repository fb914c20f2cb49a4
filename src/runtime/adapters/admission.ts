// What an adapter must be to enter an AdapterStore, checked before anything is stored: both PEFT
// files present and each within the size limit (checked before a file is read, so a huge file
// costs no memory), and a rank and targets the model's slot pool can hold. Apart from the store
// so its tiers read as tiers, and each refusal (code, message, what to change) sits in one place.
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { ADAPTER_FILES, type AdapterFiles } from './cold.ts'
import { AdapterStoreError } from './errors.ts'
import { type AdapterSlotPools, adapterShape, type DecodedAdapter } from './types.ts'

/** ADAPTER_TOO_LARGE: one adapter file over `adapters.maxAdapterBytes`. */
export function checkFileSize(name: string, size: number, limit: number): void {
  if (size > limit)
    throw new AdapterStoreError(
      'ADAPTER_TOO_LARGE',
      `adapter file ${name} is ${size} bytes; the limit is ${limit} (adapters.maxAdapterBytes)`,
      { name, size, limit }
    )
}

/** Reads a PEFT directory's two files, each size checked before it is read. */
export async function readAdapterDir(dir: string, limit: number): Promise<AdapterFiles> {
  const files = {} as AdapterFiles
  for (const name of ADAPTER_FILES) {
    const p = join(dir, name)
    const size = await stat(p).then(
      (s) => s.size,
      () => {
        throw new AdapterStoreError(
          'ADAPTER_INVALID',
          `${p} is missing; a PEFT adapter needs ${ADAPTER_FILES.join(' and ')}`
        )
      }
    )
    checkFileSize(name, size, limit)
    files[name] = await readFile(p)
  }
  return files
}

/** The adapter's rank and targets fit the model's slot pool; returns its shape. */
export function checkFitsPools<A extends DecodedAdapter>(
  cid: string,
  adapter: A,
  pools: AdapterSlotPools<A>
): { rank: number; targets: string[]; fp32Bytes: number } {
  const shape = adapterShape(adapter)
  if (shape.rank > pools.maxRank)
    throw new AdapterStoreError(
      'ADAPTER_RANK_TOO_LARGE',
      `adapter ${cid} has rank ${shape.rank}; this model's slot pool holds ranks up to ${pools.maxRank} (raise pool.maxRank)`,
      { cid, rank: shape.rank, maxRank: pools.maxRank }
    )
  const missing = shape.targets.filter((t) => !pools.targets.includes(t))
  if (missing.length > 0)
    throw new AdapterStoreError(
      'ADAPTER_TARGET_UNSUPPORTED',
      `adapter ${cid} targets ${missing.join(', ')}; this model's slot pool covers ${pools.targets.join(', ')} (set pool.targets)`,
      { cid, targets: shape.targets, poolTargets: pools.targets }
    )
  return shape
}
