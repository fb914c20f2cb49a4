// Progress of long CLI work (src/node/cli/progress.ts, issue 19): line-oriented and quiet off a
// terminal, silent with --json, a cli-progress bar on a pseudo-terminal (util-linux `script`).
// The real commands: `openlora train` (steps, loss, tokens/s), `openlora generate` importing and
// quantizing a checkpoint (tensors), scripts/export-gguf.ts (bytes).
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { formatBytes, progressMode, startProgress } from '../../src/node/cli/progress.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'

const root = mkdtempSync(join(tmpdir(), 'openlora-progress-'))
test.after(() => rmSync(root, { recursive: true, force: true }))
const FIX = join(import.meta.dirname, '..', 'fixtures', 'train', 'llama')
const ESC = '\u001b'

function sink() {
  const out: string[] = []
  return {
    out,
    stream: Object.assign(
      new (class {
        write(s: string) {
          out.push(s)
          return true
        }
      })(),
      { isTTY: false }
    ) as unknown as NodeJS.WritableStream & { isTTY: boolean }
  }
}

test('off a terminal: a line at the start, at each tenth and at the end', () => {
  const { out, stream } = sink()
  const p = startProgress('fetch bafy…', 10_240, 'bytes', { stream })
  for (let b = 0; b <= 10_240; b += 128) p.update(b)
  p.done()
  p.done() // idempotent
  assert.is(out.length, 11, out.join(''))
  assert.is(out[0], 'fetch bafy…: 0 B / 10.0 KiB (0%)\n')
  assert.is(out[1], 'fetch bafy…: 1.00 KiB / 10.0 KiB (10%)\n')
  assert.is(out.at(-1), 'fetch bafy…: 10.0 KiB / 10.0 KiB (100%)\n')
  for (const l of out)
    assert.not.ok(l.includes(ESC) || l.includes('\r'), 'no terminal control codes in lines')
})

test('a total learnt later, a stop before the end, and steps with loss and tokens/s', () => {
  const { out, stream } = sink()
  const p = startProgress('export m.gguf', 0, 'bytes', { stream })
  p.update(512, { total: 1024 })
  p.done(false)
  assert.equal(out, [
    'export m.gguf: started\n',
    'export m.gguf: 512 B / 1.00 KiB (50%)\n',
    'export m.gguf: stopped at 512 B / 1.00 KiB\n'
  ])
  const s = sink()
  const t = startProgress('training', 4, 'steps', { stream: s.stream })
  for (let i = 1; i <= 4; i++) t.update(i, { loss: 5 - i / 2, tokensPerSecond: 1234.4 })
  t.done()
  assert.is(s.out.at(-1), 'training: step 4/4 loss 3.0000 1234 tok/s (100%)\n')
})

test('^C while a bar is drawn gives the cursor back (a command with its own SIGINT handler keeps running)', () => {
  const { out, stream } = sink()
  Object.assign(stream, { isTTY: true, columns: 100 })
  let handled = 0
  const own = () => void handled++
  process.on('SIGINT', own)
  const p = startProgress('adapter bafy…', 4096, 'bytes', { stream, mode: 'bar' })
  try {
    p.update(1024)
    assert.ok(out.join('').includes(`${ESC}[?25l`), 'cursor hidden while drawing')
    assert.not.ok(out.join('').includes(`${ESC}[?25h`), 'not shown again before ^C')
    process.emit('SIGINT')
    assert.ok(out.join('').includes(`${ESC}[?25h`), 'cursor shown again on ^C')
    assert.is(handled, 1)
    assert.is(process.listenerCount('SIGINT'), 1, 'the bar no longer listens')
  } finally {
    p.done() // its redraw timer would keep the test alive
    process.off('SIGINT', own)
  }
})

test('--json is quiet; the mode follows the terminal', () => {
  const { out, stream } = sink()
  const p = startProgress('training', 10, 'steps', { stream, json: true })
  p.update(5)
  p.done()
  assert.equal(out, [])
  assert.is(progressMode({ json: true }), 'quiet')
  assert.is(progressMode({ stream }), 'lines')
  assert.is(formatBytes(3 * 1024 * 1024), '3.00 MiB')
})

const train = (extra: string[]) => [
  'src/node/cli/main.ts',
  'train',
  '--model',
  FIX,
  '--out',
  join(root, `out-${extra.length}`),
  '--tokens',
  join(FIX, 'tokens.json'),
  '--init-adapter',
  join(FIX, 'adapter'),
  '--steps',
  '4',
  '--lr',
  '0.5',
  '--optimizer',
  'sgd',
  '--seed',
  '1',
  '--data-dir',
  join(root, 'node'),
  ...extra
]

test('openlora train off a terminal: progress lines on stderr with loss and tokens/s; --json: none', () => {
  const r = spawnSync(process.execPath, train([]), { encoding: 'utf8' })
  assert.is(r.status, 0, r.stderr)
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('training: '))
  assert.is(lines[0], 'training: step 0/4 (0%)')
  assert.match(lines.at(-1)!, /^training: step 4\/4 loss \d+\.\d{4} \d+ tok\/s \(100%\)$/)
  assert.not.ok(r.stderr.includes(ESC), 'no escape codes off a terminal')
  assert.match(r.stdout, /^adapter .* final loss/m)
  const j = spawnSync(process.execPath, train(['--json']), { encoding: 'utf8' })
  assert.is(j.status, 0, j.stderr)
  assert.not.ok(j.stderr.includes('training: '), j.stderr)
  const events = j.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string })
  assert.equal(
    events.map((e) => e.event),
    ['step', 'step', 'step', 'step', 'done']
  )
})

test('openlora train on a pseudo-terminal draws a bar with step, loss, tokens/s and ETA', () => {
  const cmd = [process.execPath, ...train(['--threads', '1'])].map((a) => `'${a}'`).join(' ')
  // `script` gives the command a pseudo-terminal for stdout and stderr and copies what it draws
  const r = spawnSync('script', ['-q', '-e', '-c', cmd, '/dev/null'], {
    encoding: 'utf8',
    env: { ...process.env, COLUMNS: '120' }
  })
  assert.is(r.status, 0, r.stdout + r.stderr)
  assert.match(r.stdout, /training \[#+\.*\] step \d\/4 \| loss \d+\.\d{4} \| \d+ tok\/s \| ETA/)
  assert.match(r.stdout, /training \[#{24}\] step 4\/4/)
  assert.ok(r.stdout.includes(`${ESC}[?25l`), 'cursor hidden while drawing')
  assert.ok(r.stdout.includes(`${ESC}[?25h`), 'and shown again')
  assert.not.ok(r.stdout.includes('training: step'), 'no progress lines on a terminal')
})

test('generate imports and quantizes a checkpoint with tensor progress, silent once cached', async () => {
  const model = join(root, 'model')
  await makeModel({ out: model, preset: 'tiny', seed: 5 })
  const gen = (extra: string[] = []) =>
    spawnSync(
      process.execPath,
      [
        'src/node/cli/main.ts',
        'generate',
        '--model',
        model,
        '--prompt-ids',
        '1,2,3',
        '--max-tokens',
        '2',
        '--weights',
        'int8',
        '--cache-dir',
        join(root, 'cache'),
        ...extra
      ],
      { encoding: 'utf8' }
    )
  const first = gen()
  assert.is(first.status, 0, first.stderr)
  const lines = first.stderr.split('\n').filter((l) => l.startsWith('import + quantize int8: '))
  assert.match(lines[0]!, /^import \+ quantize int8: \d+\/\d+ tensors \(\d+%\)$/)
  assert.match(lines.at(-1)!, /^import \+ quantize int8: (\d+)\/\1 tensors \(100%\)$/)
  const again = gen()
  assert.is(again.status, 0, again.stderr)
  assert.not.ok(again.stderr.includes('import'), 'the cached graph is not imported again')
})

test('export-gguf shows bytes written off a terminal; --json prints JSON only', async () => {
  const model = join(root, 'model')
  const out = join(root, 'm.gguf')
  const r = spawnSync(process.execPath, ['scripts/export-gguf.ts', model, '--out', out], { encoding: 'utf8' })
  assert.is(r.status, 0, r.stderr)
  const lines = r.stderr.split('\n').filter((l) => l.startsWith(`export ${out}: `))
  assert.is(lines[0], `export ${out}: started`)
  assert.match(lines.at(-1)!, / \(100%\)$/)
  const j = spawnSync(process.execPath, ['scripts/export-gguf.ts', model, '--out', out, '--json'], {
    encoding: 'utf8'
  })
  assert.is(j.status, 0, j.stderr)
  assert.not.ok(j.stderr.includes('export '), j.stderr)
  const done = JSON.parse(j.stdout) as { file: string; bytes: number }
  assert.is(done.file, out)
  assert.ok(done.bytes > 0)
})

test.run()
