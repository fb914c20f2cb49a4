// Gateway API keys (src/gateway/keys.ts): stored only as hashes, found by secret, revoked at once,
// rate-limited per key, and a key's spend budget enforced and kept across a restart.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { GatewayError } from '../../src/gateway/errors.ts'
import { KeyAuth, KeyStore } from '../../src/gateway/keys.ts'

const dir = mkdtempSync(join(tmpdir(), 'gateway-keys-unit-'))
test.after(() => rmSync(dir, { recursive: true, force: true }))

const status = (fn: () => unknown): number => {
  try {
    fn()
  } catch (err) {
    assert.instance(err, GatewayError)
    return (err as GatewayError).status
  }
  return 200
}

test('keys are stored hashed, found by secret and refused once revoked', () => {
  const store = new KeyStore(dir)
  const { key, record } = store.add({ name: 'a' })
  const file = readFileSync(store.file, 'utf8')
  assert.not.ok(file.includes(key), 'the secret is never written')
  assert.ok(file.includes(record.hash))
  const auth = new KeyAuth(store, true, () => undefined)
  assert.is(auth.authenticate(`Bearer ${key}`)?.id, record.id)
  assert.is(
    status(() => auth.authenticate(undefined)),
    401
  )
  assert.is(
    status(() => auth.authenticate(`Bearer ${key}x`)),
    401
  )
  store.revoke('a')
  assert.is(
    status(() => auth.authenticate(`Bearer ${key}`)),
    401
  )
})

test('keys off: no header needed; admin still needs the admin token or an admin key', () => {
  const store = new KeyStore(dir)
  const auth = new KeyAuth(store, false, () => 'tok')
  assert.is(auth.authenticate(undefined), undefined)
  assert.is(
    status(() => auth.requireAdmin(undefined)),
    401
  )
  assert.is(
    status(() => auth.requireAdmin('Bearer tok')),
    200
  )
  const { key } = store.add({ name: 'adm', admin: true })
  assert.is(
    status(() => auth.requireAdmin(`Bearer ${key}`)),
    200
  )
  const { key: plain } = store.add({ name: 'plain' })
  assert.is(
    status(() => auth.requireAdmin(`Bearer ${plain}`)),
    401
  )
})

test('a key over its budget gets 402, and its spend survives a restart', async () => {
  const store = new KeyStore(dir)
  const { key, record } = store.add({ name: 'budget', maxSpend: '100' })
  const saved = new Map<string, bigint>()
  const auth = new KeyAuth(
    store,
    true,
    () => undefined,
    new Map(),
    async (id, v) => void saved.set(id, v)
  )
  const rec = auth.authenticate(`Bearer ${key}`)
  auth.checkBudget(rec)
  auth.spend(rec, 60n)
  auth.checkBudget(rec)
  auth.spend(rec, 40n)
  assert.is(
    status(() => auth.checkBudget(rec)),
    402
  )
  await new Promise((r) => setImmediate(r))
  assert.is(saved.get(record.id), 100n)
  const again = new KeyAuth(store, true, () => undefined, saved)
  assert.is(
    status(() => again.checkBudget(again.authenticate(`Bearer ${key}`))),
    402
  )
})

test('a key over its rate gets 429 with a retry hint', () => {
  const store = new KeyStore(dir)
  const { key } = store.add({ name: 'rate', ratePerMinute: 2 })
  const auth = new KeyAuth(store, true, () => undefined)
  auth.authenticate(`Bearer ${key}`)
  auth.authenticate(`Bearer ${key}`)
  try {
    auth.authenticate(`Bearer ${key}`)
    assert.unreachable('third request must fail')
  } catch (err) {
    assert.is((err as GatewayError).status, 429)
    assert.ok(((err as GatewayError).retryAfterMs ?? 0) > 0)
  }
})

test.run()
