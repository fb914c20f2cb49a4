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
import { makeFamilyModel } from '../../src/runtime/fixtures/make-family-model.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { familyOf, type Projection, parseModelConfig } from '../../src/runtime/model/config.ts'

export const ALL_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']
export const MIXED_RANKS = [8, 16, 32]

// The SmolLM2-135M shape (576 wide, 30 layers, 9 heads of 64, 3 KV heads, 1536 MLP, 49k vocab)
// in each family's config.json, from the committed fixture's config (as transformers wrote it)
const FIXTURES = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'families')
const SHAPE = {
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  head_dim: 64,
  vocab_size: 49152,
  max_position_embeddings: 2048,
  initializer_range: 0.02
}
const SHAPE_BY_FAMILY: Record<string, Record<string, unknown>> = {
  gemma: { num_key_value_heads: 1 },
  gemma2: { sliding_window: 512, layer_types: undefined },
  gemma3_text: { sliding_window: 512, layer_types: undefined, sliding_window_pattern: 6 },
  phi3: { sliding_window: 512 },
  falcon: { ffn_hidden_size: 1536, intermediate_size: undefined, head_dim: undefined },
  falcon_new: { ffn_hidden_size: 1536, num_kv_heads: 3, intermediate_size: undefined, head_dim: undefined },
  // Falcon-RW: ALiBi, one K/V head per query head (9 of 64)
  falcon_rw: { ffn_hidden_size: 1536, num_kv_heads: 9, intermediate_size: undefined, head_dim: undefined },
  bloom: {
    n_layer: 30,
    n_head: 9,
    num_hidden_layers: undefined,
    num_attention_heads: undefined,
    num_key_value_heads: undefined,
    head_dim: undefined,
    intermediate_size: undefined,
    max_position_embeddings: undefined
  }
}
export const BENCH_FAMILIES = ['llama', ...Object.keys(SHAPE_BY_FAMILY), 'qwen3', 'glm', 'glm4']

export async function ensureModel(
  cache: string,
  log: (m: string) => void,
  family = 'llama'
): Promise<string> {
  const dir = join(cache, 'model')
  if (!existsSync(join(cache, 'model.done'))) {
    if (family === 'llama') {
      log('making the smollm2-135m-shaped checkpoint (once)')
      await makeModel({ out: dir, preset: 'smollm2-135m', seed: 0 })
    } else {
      log(`making a smollm2-135m-shaped ${family} checkpoint (once)`)
      const base = JSON.parse(await readFile(join(FIXTURES, family, 'config.json'), 'utf8')) as Record<
        string,
        unknown
      >
      const config = JSON.parse(JSON.stringify({ ...base, ...SHAPE, ...SHAPE_BY_FAMILY[family] }))
      await makeFamilyModel({ out: dir, config, seed: 0 })
    }
    await writeFile(join(cache, 'model.done'), '')
  }
  return dir
}

/**
 * The family's module names (short, as PEFT's target_modules) that hold any of `projs`, and every
 * projection those modules feed (a fused query_key_value adapts k too): what an adapter set
 * targets and what its slot pool must hold.
 */
export async function familyTargets(
  modelDir: string,
  projs: readonly Projection[]
): Promise<{ modules: string[]; projections: string[] }> {
  const cfg = parseModelConfig(JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8')))
  const modules = familyOf(cfg)
    .layer(cfg, 0)
    .modules.filter((m) => m.parts.some((p) => projs.includes(p.proj)))
  return {
    modules: modules.map((m) => m.path.split('.').pop()!),
    projections: [...new Set(modules.flatMap((m) => m.parts.map((p) => p.proj)))]
  }
}

export interface AdapterSet {
  name: string
  count: number
  rank: (i: number) => number
  targets: string[]
  seed: number
}

export const QV_SET = (count: number, targets = ['q_proj', 'v_proj']): AdapterSet => ({
  name: 'qv',
  count,
  rank: () => 8,
  targets,
  seed: 0
})

export const MIXED_SET = (count: number, targets = ALL_TARGETS): AdapterSet => ({
  name: 'mixed',
  count,
  rank: (i) => MIXED_RANKS[i % MIXED_RANKS.length]!,
  targets,
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
