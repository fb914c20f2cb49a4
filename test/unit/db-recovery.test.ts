// A corrupt or locked node database is a clear error naming the recovery command, never a
// silent fresh start; `openlora db repair` brings a database with a destroyed manifest back with
// every entry, and `openlora db check` says so.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DatabaseOpenError, openNodeDb } from '../../src/node/db.ts'
import { runCli } from '../helpers/cli.ts'

let dir: string
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'db-recovery-'))
})
test.after(() => rmSync(dir, { recursive: true, force: true }))

async function filled(dataDir: string, n: number): Promise<string> {
  const dbDir = join(dataDir, 'db')
  const db = new Level<string, string>(dbDir)
  await db.open()
  for (let i = 0; i < n; i++) await db.put(`voucher!${i}`, 'x'.repeat(200))
  await db.close()
  return dbDir
}

test('a destroyed manifest: open refuses with the repair command; repair restores every entry', async () => {
  const dataDir = join(dir, 'corrupt')
  const dbDir = await filled(dataDir, 500)
  for (const f of readdirSync(dbDir)) if (f.startsWith('MANIFEST')) writeFileSync(join(dbDir, f), 'garbage')
  const err = await openNodeDb(dbDir, dataDir).then(
    () => undefined,
    (e: unknown) => e
  )
  assert.instance(err, DatabaseOpenError)
  assert.is((err as DatabaseOpenError).code, 'DATABASE_CORRUPT')
  assert.match((err as Error).message, `openlora db repair --data-dir ${dataDir}`)
  // nothing was replaced: the check still fails the same way
  const check = await runCli('db', 'check', '--data-dir', dataDir)
  assert.is(check.code, 1)
  assert.match(check.err, /is corrupt/)
  const repair = await runCli('db', 'repair', '--data-dir', dataDir)
  assert.is(repair.code, 0, repair.err)
  const ok = await runCli('db', 'check', '--data-dir', dataDir, '--json')
  assert.is(ok.code, 0, ok.err)
  assert.is(JSON.parse(ok.out).entries, 500)
})

test('a database another process holds: a locked error naming the data dir', async () => {
  const dataDir = join(dir, 'locked')
  const dbDir = await filled(dataDir, 3)
  const holder = new Level<string, string>(dbDir)
  await holder.open()
  try {
    const err = await openNodeDb(dbDir, dataDir).then(
      () => undefined,
      (e: unknown) => e
    )
    assert.instance(err, DatabaseOpenError)
    assert.is((err as DatabaseOpenError).code, 'DATABASE_LOCKED')
    assert.match((err as Error).message, `--data-dir ${dataDir}`)
  } finally {
    await holder.close()
  }
})

test.run()
