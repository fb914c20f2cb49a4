// `openlora train --data`: text rows train every token, chat rows only the assistant turns (as
// rendered by the model's own chat template), malformed rows are refused naming the line, and a
// text row trains exactly as its token ids given with --tokens.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { Tokenizer } from '../../src/runtime/tokenizer.ts'
import { encodeRows, parseJsonl } from '../../src/runtime/training/data.ts'

const root = mkdtempSync(join(tmpdir(), 'openlora-train-data-'))
const model = join(root, 'tiny')
await makeModel({ out: model, preset: 'tiny' })
const tok = await Tokenizer.fromDir(model)

const ROWS = [
  { text: 'the quick brown fox jumps over the lazy dog' },
  {
    messages: [
      { role: 'user', content: 'say hi' },
      { role: 'assistant', content: 'hi there' }
    ]
  },
  {
    messages: [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'a?' },
      { role: 'assistant', content: 'b' },
      { role: 'user', content: 'c?' },
      { role: 'assistant', content: 'd' }
    ]
  }
]
const jsonl = ROWS.map((r) => JSON.stringify(r)).join('\n')

function cli(...args: string[]) {
  // train signs its record with the node key of --data-dir: keep that key inside the test's dir
  const dd = args[0] === 'train' || args[0] === 'id' ? ['--data-dir', join(root, 'node')] : []
  const r = spawnSync(process.execPath, ['src/node/cli/main.ts', ...args, ...dd], { encoding: 'utf8' })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

test('text rows train every predicted token; chat rows only the assistant turns', () => {
  const ex = encodeRows(tok, parseJsonl(jsonl, 'rows.jsonl'))
  const trainedText = ex.map((e) => tok.decode(e.ids.filter((_, i) => e.trained[i])))
  assert.is(ex[0]!.trained[0], false, 'the first token is never predicted')
  assert.ok(ex[0]!.trained.slice(1).every(Boolean))
  assert.is(trainedText[1], 'hi there<|im_end|>\n')
  assert.is(trainedText[2], 'b<|im_end|>\nd<|im_end|>\n')
  const full = tok.decode(ex[2]!.ids)
  assert.ok(full.includes('be brief') && full.includes('c?'), 'system and user turns are in the input')
})

test('malformed rows are refused naming the line and the allowed shapes', () => {
  assert.throws(
    () => parseJsonl('{"text": "a"}\n{"txt": "b"}', 'f.jsonl'),
    /f\.jsonl line 2: .*\{"text": "…"\}/
  )
  assert.throws(() => parseJsonl('{"text": "a"}\nnot json', 'f.jsonl'), /line 2: not JSON/)
  assert.throws(
    () => parseJsonl('{"messages": [{"role": "tool", "content": "x"}]}', 'f.jsonl'),
    /line 1: .*role/
  )
  assert.throws(
    () => encodeRows(tok, parseJsonl('{"messages": [{"role": "user", "content": "x"}]}', 'f.jsonl')),
    /needs an assistant message/
  )
  assert.throws(() => parseJsonl('\n\n', 'f.jsonl'), /no rows/)
})

test('--data trains (loss falls), and a text row gives the same losses as its ids via --tokens', () => {
  const data = join(root, 'rows.jsonl')
  writeFileSync(data, jsonl)
  const common = ['--steps', '4', '--lr', '0.01', '--optimizer', 'adamw', '--seed', '3', '--json']
  const r = cli('train', '--model', model, '--out', join(root, 'out'), '--data', data, ...common)
  assert.is(r.code, 0, r.err)
  const losses = JSON.parse(r.out.trim().split('\n').at(-1)!).losses as number[]
  assert.ok(losses[3]! < losses[0]!, `loss falls: ${losses}`)

  const textOnly = join(root, 'text.jsonl')
  writeFileSync(textOnly, JSON.stringify(ROWS[0]))
  const ids = join(root, 'ids.json')
  writeFileSync(ids, JSON.stringify([tok.encode(ROWS[0]!.text!)]))
  const a = cli('train', '--model', model, '--out', join(root, 'a'), '--data', textOnly, ...common)
  const b = cli('train', '--model', model, '--out', join(root, 'b'), '--tokens', ids, ...common)
  assert.is(a.code, 0, a.err)
  assert.is(b.code, 0, b.err)
  const done = (o: string) => JSON.parse(o.trim().split('\n').at(-1)!)
  assert.equal(done(a.out).losses, done(b.out).losses)
  assert.is(done(a.out).cid, done(b.out).cid, 'same data, seed and options: the same adapter bytes')

  const both = cli(
    'train',
    '--model',
    model,
    '--out',
    join(root, 'c'),
    '--data',
    data,
    '--tokens',
    ids,
    ...common
  )
  assert.is(both.code, 2)
  assert.match(both.err, /exactly one of --tokens/)
})

test.run()
