// Opening the node's LevelDB. A database that cannot be opened stops the node with what went
// wrong and the command that fixes it; it is never replaced by a fresh one, because it holds the
// vouchers and receipts the node is owed money for (docs/HARDENING.md).
import { Level } from 'level'
import { OpenLoraError } from '../common/errors.ts'

export class DatabaseOpenError extends OpenLoraError<
  'DATABASE_CORRUPT' | 'DATABASE_LOCKED' | 'DATABASE_OPEN'
> {
  constructor(
    code: 'DATABASE_CORRUPT' | 'DATABASE_LOCKED' | 'DATABASE_OPEN',
    message: string,
    dir: string,
    cause: unknown
  ) {
    super(code, message, { dir }, { cause })
  }
}

function causeText(err: unknown): string {
  const c = (err as { cause?: { message?: string } }).cause
  return c?.message ?? (err as Error).message
}

/** Opens (creating if absent) the LevelDB at `dbDir`; `dataDir` names the directory in advice. */
export async function openNodeDb<V = Uint8Array>(
  dbDir: string,
  dataDir: string,
  opts: { valueEncoding?: string } = { valueEncoding: 'view' }
): Promise<Level<string, V>> {
  const db = new Level<string, V>(dbDir, opts as never)
  try {
    await db.open()
    return db
  } catch (err) {
    const why = causeText(err)
    const code = (err as { cause?: { code?: string } }).cause?.code
    if (code === 'LEVEL_LOCKED')
      throw new DatabaseOpenError(
        'DATABASE_LOCKED',
        `database ${dbDir} is locked by another process (${why}); stop the other node or command using --data-dir ${dataDir}`,
        dbDir,
        err
      )
    if (code === 'LEVEL_CORRUPTION')
      throw new DatabaseOpenError(
        'DATABASE_CORRUPT',
        `database ${dbDir} is corrupt (${why}); copy ${dataDir} aside as a backup, then run \`openlora db repair --data-dir ${dataDir}\` and \`openlora db check --data-dir ${dataDir}\``,
        dbDir,
        err
      )
    throw new DatabaseOpenError('DATABASE_OPEN', `database ${dbDir} failed to open: ${why}`, dbDir, err)
  }
}

export interface DbCheck {
  entries: number
  bytes: number
}

/** Reads every entry (LevelDB verifies block checksums on the way) and counts them. */
export async function checkNodeDb(dbDir: string, dataDir: string): Promise<DbCheck> {
  const db = await openNodeDb<Uint8Array>(dbDir, dataDir, { valueEncoding: 'view' })
  try {
    let entries = 0
    let bytes = 0
    for await (const [k, v] of db.iterator({ fillCache: false })) {
      entries++
      bytes += k.length + v.byteLength
    }
    return { entries, bytes }
  } catch (err) {
    throw new DatabaseOpenError(
      'DATABASE_CORRUPT',
      `database ${dbDir} has unreadable entries (${causeText(err)}); run \`openlora db repair --data-dir ${dataDir}\``,
      dbDir,
      err
    )
  } finally {
    await db.close()
  }
}

/** LevelDB's own repair: rebuilds the manifest from the table and log files it can read. */
export async function repairNodeDb(dbDir: string): Promise<void> {
  // in Node, level's Level is classic-level's ClassicLevel, whose static repair() level's
  // browser-neutral typings leave out
  await (Level as unknown as { repair(location: string): Promise<void> }).repair(dbDir)
}
