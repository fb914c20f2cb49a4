// L5 (docs/THREATS.md): a key file that other users on the machine can read. Before the fix the
// node only warned and started with it (and the CLI signed with it); now both refuse it and say
// how to fix it. The admin endpoint's file is created exclusively with mode 0600 and its token
// compared in constant time (a wrong token of the right length is refused like any other).
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generatePrivateKey } from 'viem/accounts'
import { createLogger } from '../../src/common/log.ts'
import { ADMIN_FILE, AdminServer } from '../../src/node/admin.ts'
import { loadOperatorKey } from '../../src/node/identity.ts'
import { runCli } from '../helpers/cli.ts'

const root = await mkdtemp(join(tmpdir(), 'attack-l5-'))
test.after(() => rm(root, { recursive: true, force: true }))
const log = createLogger('l5', { level: 'silent' })

test('an operator key readable by others is refused, with what to do', () => {
  const keys = join(root, 'keys')
  mkdirSync(keys, { recursive: true })
  const file = join(keys, 'operator.key')
  writeFileSync(file, `${generatePrivateKey()}\n`, { mode: 0o600 })
  chmodSync(file, 0o644)
  assert.throws(() => loadOperatorKey(keys, log), /readable by group or others \(mode 644\); run `chmod 600/)
  chmodSync(file, 0o600)
  assert.ok(loadOperatorKey(keys, log).address.startsWith('0x'), 'a private key file loads')
})

test('the CLI refuses a --key-file readable by others before using it', async () => {
  const file = join(root, 'client.key')
  writeFileSync(file, `${generatePrivateKey()}\n`, { mode: 0o644 })
  chmodSync(file, 0o644)
  const r = await runCli(
    'deposit',
    '1',
    '--rpc',
    'http://127.0.0.1:1',
    '--settlement',
    '0x0000000000000000000000000000000000000001',
    '--node',
    '0x0000000000000000000000000000000000000002',
    '--key-file',
    file
  )
  assert.is.not(r.code, 0)
  assert.match(r.err + r.out, /readable by group or others/)
})

test('the admin file is private; a wrong token of the right length is refused', async () => {
  const dir = join(root, 'admin')
  mkdirSync(dir, { recursive: true })
  const admin = new AdminServer(dir, log)
  admin.route('/ping', () => ({ ok: true }))
  await admin.start('127.0.0.1', 0)
  try {
    const file = join(dir, ADMIN_FILE)
    assert.is(statSync(file).mode & 0o777, 0o600)
    const { url, token } = JSON.parse(readFileSync(file, 'utf8'))
    const ok = await fetch(`${url}/ping`, { headers: { authorization: `Bearer ${token}` } })
    assert.is(ok.status, 200)
    const wrong = token.replace(/^./, (c: string) => (c === 'a' ? 'b' : 'a'))
    const bad = await fetch(`${url}/ping`, { headers: { authorization: `Bearer ${wrong}` } })
    assert.is(bad.status, 401)
  } finally {
    await admin.stop()
  }
})

test.run()
