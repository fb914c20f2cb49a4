// The admin endpoint on 127.0.0.1: GET routes and POST actions with their refusals (token, unknown
// path, body not JSON or too large, a domain error answered 400 with its code, anything else
// 500), and the client's two error kinds.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { OpenLoraError } from '../../src/common/errors.ts'
import { silentLogger } from '../../src/common/log.ts'
import {
  AdminRefusedError,
  AdminServer,
  AdminUnavailableError,
  adminRequest,
  MAX_ACTION_BODY_BYTES
} from '../../src/node/admin.ts'

const dir = await mkdtemp(join(tmpdir(), 'admin-'))
const admin = new AdminServer(dir, silentLogger)
admin.route('/hello', (q) => ({ hello: q.get('name') ?? 'you' }))
admin.action('/echo', (body) => {
  const b = body as { fail?: string }
  if (b.fail === 'domain') throw new OpenLoraError('INVALID_PARAMETERS', 'the input was refused: say why')
  if (b.fail === 'bug') throw new Error('something broke')
  return { got: body }
})

test.before(() => admin.start('127.0.0.1', 0))
test.after(async () => {
  await admin.stop()
  await rm(dir, { recursive: true, force: true })
})

test('GET routes and POST actions answer JSON through adminRequest', async () => {
  assert.equal(await adminRequest(dir, '/hello?name=ada'), { hello: 'ada' })
  assert.equal(await adminRequest(dir, '/echo', 5_000, { a: [1, 2] }), { got: { a: [1, 2] } })
})

test('refusals: a domain error is 400 with its code, a bug 500; both reach the client as AdminRefusedError', async () => {
  const refused = await adminRequest(dir, '/echo', 5_000, { fail: 'domain' }).catch((e: Error) => e)
  assert.instance(refused, AdminRefusedError)
  assert.match((refused as Error).message, /the input was refused: say why/)
  const info = JSON.parse(await readFile(join(dir, 'admin.json'), 'utf8'))
  const post = (path: string, body: string, token = info.token) =>
    fetch(`${info.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body })
  const domain = await post('/echo', JSON.stringify({ fail: 'domain' }))
  assert.is(domain.status, 400)
  assert.equal(await domain.json(), { error: 'the input was refused: say why', code: 'INVALID_PARAMETERS' })
  assert.is((await post('/echo', JSON.stringify({ fail: 'bug' }))).status, 500)
  const notJson = await post('/echo', '{nope')
  assert.is(notJson.status, 400)
  assert.match(((await notJson.json()) as { error: string }).error, /not JSON/)
  const big = await post('/echo', JSON.stringify({ x: 'a'.repeat(MAX_ACTION_BODY_BYTES) }))
  assert.is(big.status, 400)
  assert.match(((await big.json()) as { error: string }).error, /over 65536 bytes/)
  assert.is((await post('/echo', '{}', 'wrong')).status, 401)
  const unknown = await post('/hello', '{}')
  assert.is(unknown.status, 404, 'a GET route is not an action')
  assert.match(((await unknown.json()) as { error: string }).error, /allowed: GET \/hello, POST \/echo/)
})

test('no node: AdminUnavailableError names the data dir', async () => {
  const other = await mkdtemp(join(tmpdir(), 'admin-none-'))
  const err = await adminRequest(other, '/hello').catch((e: Error) => e)
  assert.instance(err, AdminUnavailableError)
  assert.match((err as Error).message, /no running node found for data dir/)
  assert.is((err as AdminUnavailableError).data.notRunning, true)
  // an admin file left by a node that died: the port refuses, so also certainly not running
  const gone = new AdminServer(other, silentLogger)
  await gone.start('127.0.0.1', 0)
  const file = await readFile(join(other, 'admin.json'), 'utf8')
  await gone.stop()
  await writeFile(join(other, 'admin.json'), file)
  const stale = await adminRequest(other, '/hello').catch((e: Error) => e)
  assert.instance(stale, AdminUnavailableError)
  assert.is((stale as AdminUnavailableError).data.notRunning, true)
  await rm(other, { recursive: true, force: true })
})

test.run()
