// The runner's split between the native engine and ONNX Runtime (model/runner.ts), tested with a
// stand-in engine of the same Node-API interface (test/fixtures/native/echo-decoder.cc, compiled
// by compile.ts) that echoes what it is given: prompt passes run on ORT, every one-token-a-row
// pass reaches the engine in the session worker with its rows' ids, positions, the cache layout
// and the runner's own shared buffers (it reads the key ORT wrote, then the one it wrote itself).
// Also loadModel's decodeKernels choices where the engine cannot run, and `generate --decode-kernels`.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createLogger, silentLogger } from '../../src/common/log.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { ensureBuiltModel } from '../../src/runtime/model/build.ts'
import { loadModel, readModelConfig } from '../../src/runtime/model/index.ts'
import { MIN_KV_CAPACITY } from '../../src/runtime/model/kv-layout.ts'
import { modelLayout } from '../../src/runtime/model/layout.ts'
import { ModelSession } from '../../src/runtime/model/loaded-model.ts'
import { compileNative } from '../../src/runtime/native/compile.ts'
import { loadNativeAddon, NativeUnavailableError } from '../../src/runtime/native/decoder.ts'
import { nativePlan } from '../../src/runtime/native/spec.ts'

const root = mkdtempSync(join(tmpdir(), 'openlora-native-runner-'))
const cacheDir = join(root, 'cache')
const modelDir = join(root, 'tiny')
const ECHO = join(import.meta.dirname, '../fixtures/native/echo-decoder.cc')
const targets = ['q_proj', 'v_proj']

test.before(async () => {
  await makeModel({ preset: 'tiny', seed: 9, out: modelDir })
})
test.after(() => rmSync(root, { recursive: true, force: true }))

for (const worker of [true, false]) {
  test(`${worker ? 'worker' : 'in-process'} runner: prompts on ORT, decode passes on the engine over the shared cache`, async () => {
    const cfg = await readModelConfig(modelDir)
    const built = await ensureBuiltModel(modelDir, cfg, { cacheDir, targets })
    const plan = await nativePlan(dirname(built.modelPath), cfg, 'fp32', 1)
    const addonPath = await compileNative({ source: ECHO, cacheDir: join(root, 'native') })
    const session = await ModelSession.create(built.modelPath, modelLayout(cfg), built.weightsHash, {
      executionProvider: 'cpu',
      maxBatch: 4,
      maxSeqLen: 128,
      pool: { slots: 2, maxRank: 4, targets },
      worker,
      native: { addonPath, plan },
      log: silentLogger
    })
    try {
      assert.is(session.decodeKernels, 'native')
      const a = session.allocSequence()
      const b = session.allocSequence()
      const c = session.allocSequence()
      const [prompt] = await session.step([{ seq: a, tokens: [5, 6, 7], slot: 0 }])
      // ORT's logits: real numbers over the whole vocabulary, not the engine's echo
      assert.is.not(prompt![0], 5)
      assert.ok(prompt!.some((v) => v !== 0 && v !== 5 && v !== 2))
      await session.step([{ seq: c, tokens: [3, 4], slot: 0 }])

      // rows a and c decode, b (between them) rides along as a dummy the engine must skip
      const [la, lc] = await session.step([
        { seq: a, tokens: [9], slot: 0 },
        { seq: c, tokens: [11], slot: 1 }
      ])
      const echo = (l: Float32Array) => [...l.subarray(0, 7)]
      // ids, position, first row of the pass, cache layout now, rows, capacity, LoRA targets×layers
      assert.equal(echo(la!), [9, 3, a, MIN_KV_CAPACITY, 4, 128, targets.length * cfg.numLayers])
      assert.equal(echo(lc!), [11, 2, a, MIN_KV_CAPACITY, 4, 128, targets.length * cfg.numLayers])
      assert.is.not(la![7], 0, 'the engine reads the key ORT wrote at the prompt position before')
      assert.is(la![8], 0, 'nothing past the echo')
      const [again] = await session.step([{ seq: a, tokens: [12], slot: 0 }])
      assert.equal(echo(again!).slice(0, 3), [12, 4, a])
      assert.is(again![7], 1009, 'the engine wrote its key in place: the next pass reads it')
      assert.is(session.sequenceLength(a), 5)
      assert.is(session.sequenceLength(b), 0)
    } finally {
      await session.dispose()
    }
  })
}

test('loadModel decodeKernels: ort stays on ORT; native refuses an unsupported model naming why; auto falls back', async () => {
  const opts = { cacheDir, maxBatch: 2, maxSeqLen: 64, pool: { targets: [] }, log: silentLogger }
  const ort = await loadModel(modelDir, { ...opts, decodeKernels: 'ort' })
  assert.is(ort.decodeKernels, 'ort')
  await ort.dispose()
  const gemma = join(import.meta.dirname, '../fixtures/families/gemma')
  try {
    await loadModel(gemma, { ...opts, decodeKernels: 'native' })
    assert.unreachable('native with an unsupported model must fail')
  } catch (err) {
    assert.instance(err, NativeUnavailableError)
    assert.is((err as NativeUnavailableError).code, 'NATIVE_UNAVAILABLE')
    assert.match((err as Error).message, /decodeKernels "native".*norm "rms1p"/)
  }
  const lines: string[] = []
  const log = createLogger('test', { level: 'info', json: true, write: (line) => lines.push(line) })
  const auto = await loadModel(gemma, { ...opts, log })
  try {
    assert.is(auto.decodeKernels, 'ort')
    assert.ok(
      lines.filter((l) => l.includes('ONNX Runtime kernels') && l.includes('rms1p')).length === 1,
      'auto says once why it uses ORT'
    )
  } finally {
    await auto.dispose()
  }
})

test('openlora generate --decode-kernels and --prompt-kernels: by name (the JSON says which ran), others refused naming the choices', async () => {
  const cli = (...extra: string[]) =>
    spawnSync(
      process.execPath,
      [
        'src/node/cli/main.ts',
        'generate',
        '--model',
        modelDir,
        '--prompt-ids',
        '5,6,7',
        '--max-tokens',
        '4',
        '--cache-dir',
        cacheDir,
        '--json',
        ...extra
      ],
      { encoding: 'utf8', env: { ...process.env, OPENLORA_LOG_LEVEL: 'silent' } }
    )
  for (const k of ['native', 'ort']) {
    const r = cli('--decode-kernels', k)
    assert.is(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout) as { decodeKernels: string; outputIds: number[] }
    assert.is(out.decodeKernels, k)
    assert.is(out.outputIds.length, 4)
  }
  const bad = cli('--decode-kernels', 'gpu')
  assert.is.not(bad.status, 0)
  assert.match(bad.stderr, /decode kernels "gpu" are not a choice; allowed: auto, native, ort/)
  // prompts: by name, and only where decode runs natively; `auto` (the default) runs this fp32
  // model's prompts natively exactly where the engine has its AVX-512 kernels
  const simd = loadNativeAddon(await compileNative({})).info().simd
  for (const [args, want] of [
    [['--decode-kernels', 'native'], simd === 'avx512vnni' ? 'native' : 'ort'],
    [['--decode-kernels', 'native', '--prompt-kernels', 'auto'], simd === 'avx512vnni' ? 'native' : 'ort'],
    [['--decode-kernels', 'native', '--prompt-kernels', 'ort'], 'ort'],
    [['--decode-kernels', 'native', '--prompt-kernels', 'native'], 'native'],
    [['--decode-kernels', 'ort', '--prompt-kernels', 'native'], 'ort']
  ] as const) {
    const r = cli(...args)
    assert.is(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout) as { promptKernels: string; outputIds: number[] }
    assert.is(out.promptKernels, want, args.join(' '))
    assert.is(out.outputIds.length, 4)
  }
  const badPrompt = cli('--prompt-kernels', 'gpu')
  assert.is.not(badPrompt.status, 0)
  assert.match(badPrompt.stderr, /prompt kernels "gpu" are not a choice; allowed: auto, ort, native/)
})

test.run()
