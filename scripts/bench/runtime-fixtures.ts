// Fixtures of the runtime benchmark, built once and kept in a cache directory (a random
// SmolLM2-135M-shaped checkpoint, 1,000 q/v rank-8 adapters, a mixed set of ranks 8/16/32 on all
// seven projections, and the adapter stores they were imported into), so a rerun — and --quick —
// spends its time measuring, not generating.
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { PeftAdapter } from '../../src/runtime/adapters/peft.ts'
import type { AdapterStore } from '../../src/runtime/adapters/store.ts'
import { makeAdapter } from '../../src/runtime/fixtures/make-adapter.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'

export const ALL_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']
export const MIXED_RANKS = [8, 16, 32]

export async function ensureModel(cache: string, log: (m: string) => void): Promise<string> {
  const dir = join(cache, 'model')
  if (!existsSync(join(cache, 'model.done'))) {
    log('making the smollm2-135m-shaped checkpoint (once)')
    await makeModel({ out: dir, preset: 'smollm2-135m', seed: 0 })
    await writeFile(join(cache, 'model.done'), '')
  }
  return dir
}

export interface AdapterSet {
  name: string
  count: number
  rank: (i: number) => number
  targets: string[]
  seed: number
}

export const QV_SET = (count: number): AdapterSet => ({
  name: 'qv',
  count,
  rank: () => 8,
  targets: ['q_proj', 'v_proj'],
  seed: 0
})

export const MIXED_SET = (count: number): AdapterSet => ({
  name: 'mixed',
  count,
  rank: (i) => MIXED_RANKS[i % MIXED_RANKS.length]!,
  targets: ALL_TARGETS,
  seed: 100_000
})

export function adapterDir(cache: string, set: AdapterSet, i: number): string {
  return join(cache, 'adapters', `${set.name}-${i}`)
}

/** Writes the set's PEFT directories and imports them into `store`; returns CIDs in order. */
export async function ensureAdapters(
  cache: string,
  modelDir: string,
  set: AdapterSet,
  store: AdapterStore<PeftAdapter>,
  log: (m: string) => void
): Promise<string[]> {
  const marker = join(cache, `${set.name}-${set.count}.json`)
  if (existsSync(marker)) {
    const cids = JSON.parse(await readFile(marker, 'utf8')) as string[]
    if (cids.length === set.count && (await store.has(cids[cids.length - 1]!))) return cids
  }
  log(`writing and importing ${set.count} ${set.name} adapters (once)`)
  const cids: string[] = []
  for (let i = 0; i < set.count; i++) {
    const dir = adapterDir(cache, set, i)
    if (!existsSync(join(dir, 'adapter_config.json')))
      await makeAdapter({
        model: modelDir,
        out: dir,
        rank: set.rank(i),
        targets: set.targets,
        seed: set.seed + i
      })
    cids.push((await store.import(dir)).cid)
    if ((i + 1) % 200 === 0) log(`  ${i + 1}/${set.count}`)
  }
  await writeFile(marker, JSON.stringify(cids))
  return cids
}
