// `openlora keys new|import|export` and the node unlocking the keystore at start, on temporary
// data dirs. Light scrypt (--scrypt-n 1024) keeps it quick; the format is the same.
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { privateKeyToAddress } from 'viem/accounts'
import { silentLogger } from '../../src/common/log.ts'
import { decryptKeystore, encryptKeystore, parseKeystore } from '../../src/crypto/keystore.ts'
import { loadOperatorKey } from '../../src/node/identity.ts'
import { PASSWORD_FILE_ENV } from '../../src/node/operator-keystore.ts'
import { runCli } from '../helpers/cli.ts'

let dir: string
let pwFile: string
const KEY = '0x7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d'

test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'keys-cli-'))
  pwFile = join(dir, 'pw')
  writeFileSync(pwFile, 'correct horse\n', { mode: 0o600 })
})
test.after(() => rmSync(dir, { recursive: true, force: true }))

const cli = (dataDir: string, ...argv: string[]) =>
  runCli('keys', ...argv, '--data-dir', dataDir, '--password-file', pwFile, '--scrypt-n', '1024')

function withPasswordFile<T>(file: string | undefined, fn: () => T): T {
  const before = process.env[PASSWORD_FILE_ENV]
  if (file === undefined) delete process.env[PASSWORD_FILE_ENV]
  else process.env[PASSWORD_FILE_ENV] = file
  try {
    return fn()
  } finally {
    if (before === undefined) delete process.env[PASSWORD_FILE_ENV]
    else process.env[PASSWORD_FILE_ENV] = before
  }
}

test('keys new writes a 0600 keystore the node unlocks with the password file', async () => {
  const dd = join(dir, 'new')
  const r = await cli(dd, 'new')
  assert.is(r.code, 0, r.err)
  const file = join(dd, 'keys', 'operator.json')
  assert.is(statSync(file).mode & 0o777, 0o600)
  const address = /operator\s+(0x[0-9a-fA-F]{40})/.exec(r.out)?.[1]
  const account = withPasswordFile(pwFile, () => loadOperatorKey(join(dd, 'keys'), silentLogger))
  assert.is(account.address, address)
  // `openlora id` goes through the same start-up identity path as `openlora start`
  process.env[PASSWORD_FILE_ENV] = pwFile
  const id = await runCli('id', '--data-dir', dd, '--json')
  delete process.env[PASSWORD_FILE_ENV]
  assert.is(id.code, 0, id.err)
  assert.is(JSON.parse(id.out).operator, address)
  // without the password file the node refuses clearly instead of making a new key
  assert.throws(
    () => withPasswordFile(undefined, () => loadOperatorKey(join(dd, 'keys'), silentLogger)),
    /OPENLORA_KEYSTORE_PASSWORD_FILE/
  )
  const wrong = join(dir, 'wrong-pw')
  writeFileSync(wrong, 'nope\n', { mode: 0o600 })
  assert.throws(
    () => withPasswordFile(wrong, () => loadOperatorKey(join(dd, 'keys'), silentLogger)),
    /wrong password/
  )
  // a second `new` never overwrites the key that receives rewards
  const again = await cli(dd, 'new')
  assert.is(again.code, 1)
  assert.match(again.err, /already exists/)
})

test("keys import encrypts this data dir's plain key in place and removes the plain copy", async () => {
  const dd = join(dir, 'inplace')
  mkdirSync(join(dd, 'keys'), { recursive: true })
  const plain = loadOperatorKey(join(dd, 'keys'), silentLogger) // first start: plain key created
  const r = await cli(dd, 'import', join(dd, 'keys', 'operator.key'))
  assert.is(r.code, 0, r.err)
  assert.not.ok(existsSync(join(dd, 'keys', 'operator.key')))
  assert.is(
    withPasswordFile(pwFile, () => loadOperatorKey(join(dd, 'keys'), silentLogger)).address,
    plain.address
  )
})

test('keys import takes a keystore from geth/cast as it is, after checking the password', async () => {
  const dd = join(dir, 'import-ks')
  const src = join(dir, 'cast-keystore.json')
  writeFileSync(src, JSON.stringify(encryptKeystore(KEY, 'correct horse', { n: 2048, r: 8, p: 1 })), {
    mode: 0o600
  })
  const r = await cli(dd, 'import', src)
  assert.is(r.code, 0, r.err)
  assert.equal(
    JSON.parse(readFileSync(join(dd, 'keys', 'operator.json'), 'utf8')),
    JSON.parse(readFileSync(src, 'utf8'))
  )
  const wrongDd = join(dir, 'import-wrong')
  writeFileSync(join(dir, 'pw2'), 'other\n', { mode: 0o600 })
  const bad = await runCli('keys', 'import', src, '--data-dir', wrongDd, '--password-file', join(dir, 'pw2'))
  assert.is(bad.code, 1)
  assert.match(bad.err, /wrong password/)
  assert.not.ok(existsSync(join(wrongDd, 'keys', 'operator.json')))
})

test('keys import of a hex key file, then export gives a keystore that decrypts to it', async () => {
  const dd = join(dir, 'hex')
  const src = join(dir, 'key.hex')
  writeFileSync(src, `${KEY.slice(2)}\n`)
  chmodSync(src, 0o600)
  assert.is((await cli(dd, 'import', src)).code, 0)
  const out = join(dir, 'exported.json')
  const ex = await cli(dd, 'export', '--out', out)
  assert.is(ex.code, 0, ex.err)
  assert.is(decryptKeystore(parseKeystore(readFileSync(out, 'utf8')), 'correct horse'), KEY)
  assert.is(parseKeystore(readFileSync(out, 'utf8')).address, privateKeyToAddress(KEY).slice(2).toLowerCase())
})

test('a plain key and a keystore side by side is refused, not guessed', async () => {
  const dd = join(dir, 'both')
  assert.is((await cli(dd, 'new')).code, 0)
  writeFileSync(join(dd, 'keys', 'operator.key'), `${KEY}\n`, { mode: 0o600 })
  assert.throws(() => withPasswordFile(pwFile, () => loadOperatorKey(join(dd, 'keys'), silentLogger)), /both/)
})

test('a password file others can read is refused (L5), as key files are', async () => {
  const loose = join(dir, 'loose-pw')
  writeFileSync(loose, 'correct horse\n', { mode: 0o644 })
  chmodSync(loose, 0o644)
  const r = await runCli('keys', 'new', '--data-dir', join(dir, 'loose'), '--password-file', loose)
  assert.is(r.code, 1)
  assert.match(r.err, /chmod 600/)
})

test('bad input: not a key file, no FILE', async () => {
  const dd = join(dir, 'bad')
  const src = join(dir, 'junk')
  writeFileSync(src, 'hello', { mode: 0o600 })
  const r = await cli(dd, 'import', src)
  assert.is(r.code, 1)
  assert.match(r.err, /keystore v3 JSON or one 32-byte hex key/)
  assert.is((await cli(dd, 'import')).code, 2)
})

test.run()
