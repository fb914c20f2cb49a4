// JSON files handed to the CLI go through a schema: a bad one fails with the key path, the value,
// what is allowed and the file, and the command exits 2 (usage) without doing anything.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { z } from '../../src/common/schema.ts'
import { UsageError } from '../../src/node/cli/command.ts'
import { readJsonInput } from '../../src/node/cli/json-input.ts'
import { runCli } from '../helpers/cli.ts'

const tmp = mkdtempSync(join(tmpdir(), 'openlora-json-input-'))
const file = (name: string, body: string): string => {
  const p = join(tmp, name)
  writeFileSync(p, body)
  return p
}

test('readJsonInput: size, JSON, then the schema, each refusal naming the file', async () => {
  const S = z.array(z.strictObject({ role: z.enum(['user', 'assistant']), content: z.string() })).min(1)
  const opts = { what: '--messages', maxBytes: 100, hint: '[{ role, content }]' }
  const ok = file('ok.json', '[{"role":"user","content":"hi"}]')
  assert.equal(await readJsonInput(ok, S, opts), [{ role: 'user', content: 'hi' }])
  const fails = async (p: string, re: RegExp) => {
    const err = await readJsonInput(p, S, opts).catch((e: Error) => e)
    assert.instance(err, UsageError)
    assert.match((err as Error).message, re)
  }
  await fails(file('big.json', `[${'1,'.repeat(80)}1]`), /--messages .*big\.json is over 100 bytes/)
  await fails(file('bad.json', '{nope'), /bad\.json is not JSON: expected \[\{ role, content \}\]/)
  const role = file('role.json', '[{"role":"root","content":"x"}]')
  await fails(
    role,
    /--messages \[0\]\.role \(from .*role\.json\): must be one of "user", "assistant" \(got "root"\)/
  )
  await fails(file('empty.json', '[]'), /must be an array of at least 1 items/)
  await fails(join(tmp, 'missing.json'), /--messages .*missing\.json: ENOENT/)
})

test('openlora verify: a receipt file with mistyped token ids is refused before verifying', async () => {
  const p = file('receipt.json', JSON.stringify({ receipt: {}, promptIds: [1, -2] }))
  const r = await runCli('verify', p)
  assert.is(r.code, 2)
  assert.match(
    r.err,
    /receipt file promptIds\[1\] \(from .*receipt\.json\): must be an integer in 0\.\.4294967295 \(got -2\)/
  )
})

test.after(() => rmSync(tmp, { recursive: true, force: true }))
test.run()
