// A stand-in for LoadedModel's narrow interface (allocSequence / freeSequence / step) whose next
// token is a hash of the sequence so far and of the adapter sitting in the row's slot. Outputs
// therefore depend on every token fed, on the order of chunks, and on the slot holding the right
// adapter for the whole step — the properties the engine must keep while it batches. Below it,
// what the engine test files share: an Engine on a real AdapterStore, and request helpers.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as tick } from 'node:timers/promises'
import { AdapterStore } from '../../src/runtime/adapters/store.ts'
import type { EngineLimits } from '../../src/runtime/engine/config.ts'
import { Engine } from '../../src/runtime/engine/engine.ts'
import type { TokenEvent } from '../../src/runtime/engine/types.ts'
import { type TestAdapter, testAdapterLoader, writeTestAdapter } from './adapter-store-fixture.ts'

export const VOCAB = 64
export const EOS = 0

export class ToyPools {
  readonly slots: number
  readonly maxRank = 8
  readonly targets = ['q_proj', 'v_proj']
  readonly content: (string | undefined)[]
  constructor(slots: number) {
    this.slots = slots
    this.content = new Array(slots).fill(undefined)
  }
  write(slot: number, adapter: { name: string }): void {
    this.content[slot] = adapter.name
  }
  clear(slot: number): void {
    this.content[slot] = undefined
  }
}

/** The token the toy model predicts after `history` with adapter `name` (or none). */
export function toyNext(history: number[], name: string | undefined): number {
  let h = 2166136261
  for (const c of name ?? 'base') h = Math.imul(h ^ c.charCodeAt(0), 16777619)
  for (const t of history) h = Math.imul(h ^ (t + 1), 16777619)
  return (h >>> 0) % VOCAB
}

/** What one request alone yields under greedy decoding. */
export function toyExpected(prompt: number[], name: string | undefined, maxNewTokens: number): number[] {
  const hist = [...prompt]
  const out: number[] = []
  while (out.length < maxNewTokens) {
    const t = toyNext(hist, name)
    if (t === EOS) break
    out.push(t)
    hist.push(t)
  }
  return out
}

export class ToyModel {
  readonly modelId: string
  readonly config = { vocabSize: VOCAB, eosTokenIds: [EOS] }
  readonly pools: ToyPools
  readonly maxBatch: number
  readonly maxSeqLen: number
  private readonly rows = new Map<number, number[]>()
  /** per step: rows fed, and how many of them were prefill (more than one token or first) */
  readonly stepLog: { rows: number; prefillRows: number; decodeRows: number; tokens: number }[] = []
  /** set when a slot's adapter changed while a step used it */
  slotViolations = 0
  maxRowsInUse = 0
  stepDelay: () => Promise<unknown> = () => tick()
  readonly tokenizer = {
    eosTokenIds: [EOS],
    encode: (text: string) => [...text].map((c) => 1 + (c.charCodeAt(0) % (VOCAB - 1))),
    decode: (ids: number[]) => ids.map((i) => String.fromCharCode(96 + (i % 27))).join(''),
    applyChatTemplate: (msgs: { role: string; content: string }[]) =>
      msgs.map((m) => `${m.role}:${m.content};`).join('')
  }

  constructor(opts: { modelId?: string; maxBatch: number; slots: number; maxSeqLen?: number }) {
    this.modelId = opts.modelId ?? 'toy'
    this.maxBatch = opts.maxBatch
    this.maxSeqLen = opts.maxSeqLen ?? 4096
    this.pools = new ToyPools(opts.slots)
  }

  get rowsInUse(): number {
    return this.rows.size
  }

  allocSequence(): number {
    for (let s = 0; s < this.maxBatch; s++) {
      if (!this.rows.has(s)) {
        this.rows.set(s, [])
        this.maxRowsInUse = Math.max(this.maxRowsInUse, this.rows.size)
        return s
      }
    }
    throw new Error(`all ${this.maxBatch} rows are in use`)
  }

  freeSequence(seq: number): void {
    if (!this.rows.delete(seq)) throw new Error(`row ${seq} freed twice or never allocated`)
  }

  async step(rows: { seq: number; tokens: number[]; slot: number }[]): Promise<Float32Array[]> {
    const names = rows.map((r) => (r.slot === 0 ? undefined : this.pools.content[r.slot]))
    let prefillRows = 0
    let tokens = 0
    for (const r of rows) {
      const hist = this.rows.get(r.seq)
      if (hist === undefined) throw new Error(`row ${r.seq} is not allocated`)
      if (hist.length === 0 || r.tokens.length > 1) prefillRows += 1
      hist.push(...r.tokens)
      tokens += r.tokens.length
    }
    this.stepLog.push({ rows: rows.length, prefillRows, decodeRows: rows.length - prefillRows, tokens })
    await this.stepDelay()
    return rows.map((r, i) => {
      if (r.slot !== 0 && this.pools.content[r.slot] !== names[i]) this.slotViolations += 1
      const logits = new Float32Array(VOCAB)
      logits[toyNext(this.rows.get(r.seq) ?? [], names[i])] = 1
      return logits
    })
  }
}

export function greedy(logits: Float32Array): number {
  let best = 0
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i
  return best
}

/** A started Engine over a real AdapterStore (in a temp dir) holding `adapters` test adapters. */
export async function setupEngine(
  opts: { slots?: number; adapters?: number; limits?: Partial<EngineLimits> } = {}
) {
  const dir = await mkdtemp(join(tmpdir(), 'engine-'))
  const maxBatch = opts.limits?.maxBatch ?? 8
  const model = new ToyModel({ maxBatch, slots: opts.slots ?? 9 })
  const store = new AdapterStore<TestAdapter>(
    { dir: join(dir, 'store') },
    {
      model: { modelId: model.modelId, config: {}, pools: model.pools },
      loadAdapter: testAdapterLoader().load
    }
  )
  await store.start()
  const adapters: { cid: string; name: string }[] = []
  for (let i = 0; i < (opts.adapters ?? 0); i++) {
    const name = `ad${i}`
    adapters.push({ cid: (await store.import(await writeTestAdapter(dir, name))).cid, name })
  }
  const engine = new Engine(
    { limits: { maxBatch, ...opts.limits } },
    { models: [{ model, adapters: store }], sample: (l) => greedy(l) }
  )
  engine.start()
  const close = async () => {
    await engine.stop()
    await store.stop()
    await rm(dir, { recursive: true, force: true })
  }
  return { dir, model, store, engine, adapters, close }
}

/** A request's tokens and its done event. */
export async function collect(it: AsyncIterable<TokenEvent>) {
  const tokens: number[] = []
  for await (const ev of it) {
    if (ev.type === 'token') tokens.push(ev.id)
    else return { tokens, done: ev }
  }
  throw new Error('stream ended without a done event')
}

/** A deterministic prompt per request index, of varying length. */
export function promptFor(i: number, len = 5 + (i % 7)): number[] {
  return Array.from({ length: len }, (_, k) => 1 + ((i * 7 + k * 3) % 63))
}
