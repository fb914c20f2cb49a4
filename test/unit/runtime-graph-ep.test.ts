// Execution provider choice: CPU by default; CUDA only where onnxruntime-node has its CUDA files,
// otherwise a warning that says how to get them, and the model reports the provider that runs.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createLogger } from '../../src/common/log.ts'
import {
  availableExecutionProviders,
  parseExecutionProvider,
  resolveExecutionProvider
} from '../../src/runtime/execution-provider.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { loadModel } from '../../src/runtime/model/index.ts'

function capture() {
  const lines: { level: string; msg: string }[] = []
  const log = createLogger('test', { level: 'debug', json: true, write: (l) => lines.push(JSON.parse(l)) })
  return { log, lines }
}

test('cuda without its files falls back to cpu with a warning naming the fix; with them it is kept', () => {
  const { log, lines } = capture()
  assert.is(resolveExecutionProvider('cuda', log, ['cpu']), 'cpu')
  assert.is(lines.length, 1)
  assert.is(lines[0]!.level, 'warn')
  assert.match(lines[0]!.msg, /ONNXRUNTIME_NODE_INSTALL=cuda12/)
  assert.is(resolveExecutionProvider('cuda', log, ['cpu', 'cuda']), 'cuda')
  assert.is(resolveExecutionProvider('cpu', log, ['cpu', 'cuda']), 'cpu')
  assert.ok(availableExecutionProviders().includes('cpu'))
})

test('an unknown provider name is refused with the allowed ones', () => {
  assert.is(parseExecutionProvider(undefined), 'cpu')
  assert.is(parseExecutionProvider('cuda'), 'cuda')
  assert.throws(() => parseExecutionProvider('tpu'), /"tpu" is not supported; allowed: cpu, cuda/)
})

test('a model asked to run on cuda reports what really runs', async () => {
  const root = mkdtempSync(join(tmpdir(), 'openlora-ep-'))
  try {
    await makeModel({ out: join(root, 'm'), preset: 'tiny' })
    const { log, lines } = capture()
    const model = await loadModel(join(root, 'm'), {
      cacheDir: join(root, 'cache'),
      executionProvider: 'cuda',
      maxBatch: 1,
      maxSeqLen: 8,
      pool: { slots: 1, maxRank: 1, targets: [] },
      log
    })
    try {
      const cuda = availableExecutionProviders().includes('cuda')
      assert.is(model.executionProvider, cuda ? 'cuda' : 'cpu')
      if (!cuda) assert.ok(lines.some((l) => l.level === 'warn' && /running on CPU/.test(l.msg)))
      const seq = model.allocSequence()
      const [logits] = await model.step([{ seq, tokens: [1, 2], slot: 0 }])
      assert.is(logits!.length, model.config.vocabSize)
    } finally {
      await model.dispose()
    }
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
})

test.run()
