// The fast-check engine of `npm run fuzz -- --engine fast-check` (and of the property tests in
// test/unit/codec-properties.test.ts): fast-check (property-based) drives inputs from three
// sources: mutations of the committed seed corpus (test/fuzz/corpus/NAME/; bit flips, byte edits,
// inserts, deletes, truncation, splices with other seeds), random bytes, and random
// JSON/CBOR-shaped values. Not coverage-guided (the default engine, Jazzer.js, is). Failures: any
// thrown value that is not a typed error (isCrash), any input taking longer than 1 s twice in a
// row, heap growth beyond 256 MiB. A failure carries the shrunk input as hex.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { encodeCanonical } from '../../src/crypto/cbor.ts'
import { type FuzzTarget, isCrash } from './targets.ts'

/** The modules each target's decoder lives in: what --coverage reports (the rest is set-up). */
export const TARGET_MODULES: Record<string, string[]> = {
  cbor: ['src/crypto/cbor.ts'],
  'infer-request': ['src/protocols/infer/codec.ts'],
  'infer-response': ['src/protocols/infer/codec.ts'],
  advert: ['src/protocols/adverts/codec.ts', 'src/protocols/adverts/binding.ts'],
  'datanet-request': ['src/protocols/datanet-exchange/exchange.ts', 'src/common/schema.ts'],
  receipt: ['src/protocols/infer/receipt.ts'],
  voucher: ['src/chain/eip712.ts'],
  'attribution-proof': ['src/attribution/proof-schema.ts'],
  safetensors: ['src/runtime/formats/safetensors.ts'],
  gguf: ['src/runtime/formats/gguf.ts'],
  'model-config': ['src/runtime/model/families/*.ts'],
  'peft-config': ['src/runtime/adapters/peft-config.ts'],
  'tokenizer-json': ['src/runtime/tokenizer.ts'],
  'chat-template': ['src/runtime/tokenizer.ts'],
  config: ['src/node/config/*.ts'],
  keystore: ['src/crypto/keystore.ts'],
  'gateway-chat': ['src/gateway/schemas.ts', 'src/gateway/structured.ts'],
  'gateway-completion': ['src/gateway/schemas.ts']
}

export const CORPUS = join(import.meta.dirname, '..', '..', 'test', 'fuzz', 'corpus')
const SLOW_MS = 1000
const HEAP_LIMIT = 256 * 1024 * 1024

export function loadCorpus(t: FuzzTarget): Uint8Array[] {
  const dir = join(CORPUS, t.name)
  return readdirSync(dir)
    .sort()
    .map((f) => new Uint8Array(readFileSync(join(dir, f))))
}

function mutate(seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const edit = fc.oneof(
    fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ op: fc.constant('set' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ op: fc.constant('ins' as const), at: fc.nat(), v: fc.uint8Array({ maxLength: 8 }) }),
    fc.record({ op: fc.constant('del' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 16 }) }),
    fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({ op: fc.constant('splice' as const), at: fc.nat(), other: fc.nat(), from: fc.nat() })
  )
  return fc
    .tuple(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 8 }))
    .map(([i, edits]) => {
      let b = Array.from(seeds[i] as Uint8Array)
      for (const e of edits) {
        const at = b.length === 0 ? 0 : e.at % (b.length + 1)
        if (e.op === 'flip' && b.length > 0) b[at % b.length]! ^= 1 << e.bit
        else if (e.op === 'set' && b.length > 0) b[at % b.length] = e.v
        else if (e.op === 'ins') b.splice(at, 0, ...e.v)
        else if (e.op === 'del') b.splice(at, e.n)
        else if (e.op === 'cut') b = b.slice(0, at)
        else if (e.op === 'splice') {
          const o = seeds[e.other % seeds.length] as Uint8Array
          const from = o.length === 0 ? 0 : e.from % o.length
          b = b.slice(0, at).concat(Array.from(o.subarray(from)))
        }
      }
      return new Uint8Array(b)
    })
}

const jsonish = fc.jsonValue({ maxDepth: 4 })
export function inputs(seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  if (seeds.length === 0) seeds = [new Uint8Array()]
  return fc.oneof(
    { weight: 6, arbitrary: mutate(seeds) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }) },
    { weight: 1, arbitrary: jsonish.map((v) => new TextEncoder().encode(JSON.stringify(v) ?? 'null')) },
    {
      weight: 1,
      arbitrary: jsonish.map((v) => {
        try {
          return encodeCanonical(v as never)
        } catch {
          return new Uint8Array() // cborg refuses some numbers (e.g. -0); the empty input is fine
        }
      })
    }
  )
}

export interface FuzzResult {
  target: string
  runs: number
  seconds: number
  execsPerSec: number
  slowestMs: number
  heapGrowthMiB: number
  failure?: string
}

export function fuzzTarget(t: FuzzTarget, runs: number, seed?: number): FuzzResult {
  const seeds = loadCorpus(t)
  let slowest = 0
  globalThis.gc?.()
  const heap0 = process.memoryUsage().heapUsed
  const started = performance.now()
  const r = fc.check(
    fc.property(inputs(seeds), (input) => {
      const once = () => {
        const t0 = performance.now()
        try {
          t.decode(input)
        } catch (err) {
          if (isCrash(err)) throw err
        }
        return performance.now() - t0
      }
      let ms = once()
      // a GC pause or a loaded machine can stall one call: a hang is slow twice in a row
      if (ms > SLOW_MS) ms = Math.min(ms, once())
      if (ms > slowest) slowest = ms
      if (ms > SLOW_MS) throw new Error(`took ${ms.toFixed(0)} ms twice (limit ${SLOW_MS})`)
    }),
    { numRuns: runs, ...(seed !== undefined ? { seed } : {}), endOnFailure: false }
  )
  const seconds = (performance.now() - started) / 1000
  globalThis.gc?.()
  const growth = (process.memoryUsage().heapUsed - heap0) / 2 ** 20
  let failure: string | undefined
  if (r.failed) {
    const input = (r.counterexample?.[0] as Uint8Array | undefined) ?? new Uint8Array()
    failure = `${String((r.errorInstance as Error)?.stack ?? r.errorInstance)}\ninput (hex): ${Buffer.from(input).toString('hex')}\nfast-check seed ${r.seed} path ${r.counterexamplePath}`
  } else if (growth * 2 ** 20 > HEAP_LIMIT) failure = `heap grew ${growth.toFixed(0)} MiB`
  return {
    target: t.name,
    runs: r.numRuns,
    seconds: Number(seconds.toFixed(1)),
    execsPerSec: Math.round(r.numRuns / seconds),
    slowestMs: Number(slowest.toFixed(1)),
    heapGrowthMiB: Number(growth.toFixed(1)),
    ...(failure ? { failure } : {})
  }
}
