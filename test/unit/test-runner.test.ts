// The test runner must show why a test failed. uvu's reporter prints an error's `details` with
// `details.split('\n')`, so an error class whose `details` was an object made the whole failure
// print nothing (the count was still right). OpenLoraError keeps its fields in `data` instead;
// this runs scripts/run-tests.ts over a tiny failing uvu file and reads what a developer sees.
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { test } from 'uvu'
import * as assert from 'uvu/assert'

const ROOT = resolve(import.meta.dirname, '../..')
const ERRORS_URL = pathToFileURL(join(ROOT, 'src/common/errors.ts')).href

let dir: string

test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'openlora-runner-'))
  mkdirSync(join(dir, 'test/unit'), { recursive: true })
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n')
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir')
  writeFileSync(
    join(dir, 'test/unit/fails.test.ts'),
    [
      `import { test } from 'uvu'`,
      `import { InvalidParametersError } from '${ERRORS_URL}'`,
      `test('passes', () => {})`,
      `test('throws an OpenLoraError', () => {`,
      `  throw new InvalidParametersError('widgets must be 1..3, got 7', { key: 'widgets', value: 7 })`,
      `})`,
      `test.run()`,
      ''
    ].join('\n')
  )
  // uvu 0.5 swallows an error thrown by a before hook (its runner returns from a finally)
  writeFileSync(
    join(dir, 'test/unit/hook-fails.test.ts'),
    [
      `import { test } from 'uvu'`,
      `test.before(() => { throw new Error('the fixture could not start: port 7 in use') })`,
      `test('never runs', () => {})`,
      `test.run()`,
      ''
    ].join('\n')
  )
})

test.after(() => {
  rmSync(dir, { recursive: true, force: true })
})

function runTests(cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [join(ROOT, 'scripts/run-tests.ts'), 'unit'], {
      cwd,
      env: { ...process.env, FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.on('error', fail)
    child.on('close', (code) => done({ code, out }))
  })
}

test('a failing test that throws an OpenLoraError shows its name, message and stack', async () => {
  const { code, out } = await runTests(dir)
  assert.is(code, 1, out)
  assert.ok(out.includes('1 passed, 2 failed'), out)
  assert.ok(out.includes('FAIL test/unit/fails.test.ts'), out)
  assert.ok(out.includes('widgets must be 1..3, got 7'), `message missing from the runner's output:\n${out}`)
  assert.ok(out.includes('fails.test.ts:5'), `stack line missing:\n${out}`)
})

test('an error thrown by a before hook is printed, not only counted', async () => {
  const { out } = await runTests(dir)
  assert.ok(out.includes('FAIL test/unit/hook-fails.test.ts'), out)
  assert.ok(out.includes('the fixture could not start: port 7 in use'), `hook error missing:\n${out}`)
})

test('OpenLoraError keeps structured fields in data, never in a non-string details', async () => {
  const { InvalidParametersError } = await import('../../src/common/errors.ts')
  const e = new InvalidParametersError('x', { key: 'k' })
  assert.equal(e.data, { key: 'k' })
  assert.ok(!('details' in e))
})

test.run()
