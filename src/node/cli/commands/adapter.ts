// `openlora adapter add DIR`: import a PEFT adapter directory into this node's cold store and
// print its CID (through a running node's admin endpoint, else into the store on disk). `openlora adapter list`: the adapters of a node with their tiers (live from a
// running node's admin endpoint, else read from the store on disk, where all are cold).
// `openlora adapter register DIR`: adapter-register.ts; `openlora adapter fetch CID`: adapter-fetch.ts.
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { inferConfigOf, modelStoreDir } from '../../../protocols/infer/extension.ts'
import { AdminUnavailableError, adminRequest } from '../../admin.ts'
import { type Command, UsageError } from '../../cli/command.ts'
import type { NodeConfig } from '../../config/schema.ts'
import { adapterFetchCommand } from './adapter-fetch.ts'
import { adapterRegisterCommand } from './adapter-register.ts'
import { configFromFlags, configOptions } from './shared.ts'

const ALL_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']

interface AdapterRow {
  model: string
  cid: string
  tier: string
  rank: number
  targets: string[]
  sizeBytes: number
}

const modelOption = {
  model: {
    type: 'string' as const,
    description: 'base model checkpoint directory (default: the first of infer.models)',
    valueName: 'DIR'
  }
}

/** The store of one model, opened without loading the model (only its config is read). */
async function openStore(config: NodeConfig, modelDir: string | undefined) {
  const c = inferConfigOf(config)
  const dir = modelDir ?? c.models[0]
  if (!dir)
    throw new UsageError('give --model DIR, or set infer.models in the config, so the adapter can be checked')
  // Loaded here, not at the top: these pull in ONNX Runtime, which other commands do not need.
  const { readModelConfig } = await import('../../../runtime/model/index.ts')
  const { modelIdOf } = await import('../../../runtime/model/config.ts')
  const { AdapterStore } = await import('../../../runtime/adapters/store.ts')
  const { loadPeftAdapter } = await import('../../../runtime/adapters/peft.ts')
  const modelConfig = await readModelConfig(dir)
  const modelId = modelIdOf(modelConfig, dir)
  const pools = {
    slots: c.slots,
    maxRank: c.maxRank,
    targets: ALL_TARGETS,
    write: () => {
      throw new Error('offline store: adapters are not made hot here')
    },
    clear: () => {}
  }
  const store = new AdapterStore(
    { dir: modelStoreDir(config.dataDir, modelId) },
    { model: { modelId, config: modelConfig, pools }, loadAdapter: loadPeftAdapter }
  )
  try {
    await store.start()
  } catch (err) {
    throw new Error(
      `cannot open the adapter store of ${modelId} under ${config.dataDir} (${(err as Error).message}); if a node is running on this data dir, stop it first`,
      { cause: err }
    )
  }
  return { store, modelId }
}

export const adapterAddCommand: Command = {
  name: 'adapter add',
  summary: 'import a PEFT adapter directory into the cold store and print its CID',
  positionals: 'DIR',
  options: { ...configOptions, ...modelOption, json: { type: 'boolean', description: 'print JSON' } },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError('give exactly one adapter DIR')
    const config = configFromFlags(values)
    const print = (r: { cid: string; added: boolean; model: string }) => {
      if (values.json === true) console.log(JSON.stringify(r))
      else console.log(`${r.cid}${r.added ? '' : ' (already present)'}`)
      return 0
    }
    // a directory here is sent absolute (the node's working directory may differ), else as a model id
    const m = values.model as string | undefined
    const model = m === undefined ? undefined : existsSync(m) ? resolve(m) : m
    // a running node owns the store (its LevelDB is locked): ask it; an answer that refuses the
    // adapter is final, and only a node that is certainly not running (no admin file, connection
    // refused) lets the command open the store on disk itself
    try {
      return print(
        await adminRequest(config.dataDir, '/adapters/add', 120_000, { dir: resolve(positionals[0]!), model })
      )
    } catch (err) {
      if (!(err instanceof AdminUnavailableError) || err.data.notRunning !== true) throw err
    }
    const { store, modelId } = await openStore(config, values.model as string | undefined)
    try {
      const { cid, added } = await store.import(positionals[0]!)
      return print({ cid, added, model: modelId })
    } finally {
      await store.stop()
    }
  }
}

export const adapterListCommand: Command = {
  name: 'adapter list',
  summary: 'list adapters with their tier (hot/warm/cold) and shape',
  options: { ...configOptions, ...modelOption, json: { type: 'boolean', description: 'print JSON' } },
  async run({ values }) {
    const config = configFromFlags(values)
    let rows: AdapterRow[]
    let source = 'running node'
    try {
      rows = (await adminRequest<{ adapters: AdapterRow[] }>(config.dataDir, '/adapters')).adapters
    } catch {
      source = 'store on disk (node not running: all cold)'
      const { store, modelId } = await openStore(config, values.model as string | undefined)
      try {
        rows = []
        let after: string | undefined
        while (true) {
          const page = await store.listCold({ limit: 1000, after })
          for (const e of page)
            rows.push({
              model: modelId,
              cid: e.cid,
              tier: 'cold',
              rank: e.rank,
              targets: e.targets,
              sizeBytes: e.sizeBytes
            })
          if (page.length < 1000) break
          after = page[page.length - 1]!.cid
        }
      } finally {
        await store.stop()
      }
    }
    if (values.json === true) {
      console.log(JSON.stringify({ source, adapters: rows }))
      return 0
    }
    console.log(`${rows.length} adapters (${source})`)
    for (const r of rows)
      console.log(
        `${r.tier.padEnd(4)}  ${r.cid}  r${r.rank} ${r.targets.join(',')}  ${r.sizeBytes} B  ${r.model}`
      )
    return 0
  }
}

export const adapterCommands: Command[] = [
  adapterAddCommand,
  adapterFetchCommand,
  adapterListCommand,
  adapterRegisterCommand
]
