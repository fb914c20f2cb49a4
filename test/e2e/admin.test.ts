// The admin endpoint on 127.0.0.1: GET routes and POST actions with their refusals (token, unknown
// path, body not JSON or too large, a domain error answered 400 with its code, anything else
// 500), and the client's two error kinds; a long action's progress streamed as NDJSON lines
// (throttled, the latest event always before the answer, a failure after the first line still a
// refusal, and nothing streamed to a caller that did not ask).
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
admin.action('/count', async (body, ctx) => {
  const b = body as { to: number; everyMs: number; fail?: 'early' | 'late' }
  if (b.fail === 'early') throw new OpenLoraError('INVALID_PARAMETERS', 'refused before any progress')
  for (let i = 0; i <= b.to; i++) {
    ctx.progress({ received: i, total: b.to })
    if (b.everyMs > 0) await sleep(b.everyMs)
  }
  if (b.fail === 'late') throw new OpenLoraError('INVALID_PARAMETERS', 'refused after progress')
  return { counted: b.to }
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

test('a long action streams its progress to a caller that asks, throttled, the last event always sent', async () => {
  const seen: { received: number; total: number }[] = []
  const onProgress = (e: Record<string, unknown>) => void seen.push(e as { received: number; total: number })
  // 1000 events in a burst: a few lines, the first and the last among them
  assert.equal(await adminRequest(dir, '/count', 5_000, { to: 1000, everyMs: 0 }, onProgress), {
    counted: 1000
  })
  assert.ok(seen.length >= 2 && seen.length < 20, `${seen.length} lines for 1000 events`)
  assert.equal(seen[0], { received: 0, total: 1000 })
  assert.equal(seen.at(-1), { received: 1000, total: 1000 })
  // events spread over ~600 ms: several lines arrive, in order, while the action runs
  seen.length = 0
  await adminRequest(dir, '/count', 5_000, { to: 12, everyMs: 50 }, onProgress)
  assert.ok(seen.length >= 4, `${seen.length} lines over 600 ms`)
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.received > seen[i - 1]!.received)
  assert.equal(seen.at(-1), { received: 12, total: 12 })
  // a refusal after the first line is the last line, read as the same AdminRefusedError
  const late = await adminRequest(dir, '/count', 5_000, { to: 3, everyMs: 0, fail: 'late' }, () => {}).catch(
    (e: Error) => e
  )
  assert.instance(late, AdminRefusedError)
  assert.match((late as Error).message, /refused after progress/)
  // before any progress the answer is still a plain 400
  const early = await adminRequest(
    dir,
    '/count',
    5_000,
    { to: 3, everyMs: 0, fail: 'early' },
    () => {}
  ).catch((e: Error) => e)
  assert.instance(early, AdminRefusedError)
  assert.match((early as Error).message, /refused before any progress/)
  // a caller that did not ask gets one JSON answer, no lines
  const info = JSON.parse(await readFile(join(dir, 'admin.json'), 'utf8'))
  const plain = await fetch(`${info.url}/count`, {
    method: 'POST',
    headers: { authorization: `Bearer ${info.token}` },
    body: JSON.stringify({ to: 5, everyMs: 0 })
  })
  assert.is(plain.headers.get('content-type'), 'application/json')
  assert.equal(await plain.json(), { counted: 5 })
  // a caller that goes away mid-stream: the action runs on, its lines go nowhere, nothing breaks
  const gone = new AbortController()
  const res = await fetch(`${info.url}/count`, {
    method: 'POST',
    headers: { authorization: `Bearer ${info.token}`, accept: 'application/x-ndjson' },
    body: JSON.stringify({ to: 8, everyMs: 50 }),
    signal: gone.signal
  })
  assert.is(res.headers.get('content-type'), 'application/x-ndjson')
  gone.abort()
  await sleep(600)
  assert.equal(await adminRequest(dir, '/hello'), { hello: 'you' })
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
