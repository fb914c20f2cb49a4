// The data directory holds LevelDB state, keys and caches of exactly one node. A lock file with
// the owner's pid keeps a second node (another process, or another node in this process) out; a
// lock left by a process that no longer exists is taken over, so a crash never needs cleanup.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { DataDir } from '../common/service.ts'
import { DataDirLockedError } from './errors.ts'

const LOCK_FILE = 'node.lock'
/** Data dirs locked by nodes of this process (pid alone cannot tell two in-process nodes apart). */
const heldHere = new Set<string>()

export type { DataDir }

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists but belongs to someone else, so it is alive.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export function openDataDir(path: string): DataDir {
  mkdirSync(path, { recursive: true, mode: 0o700 })
  const lock = join(path, LOCK_FILE)
  if (heldHere.has(path)) throw new DataDirLockedError(path, process.pid)
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(lock, `${process.pid}\n`, { flag: 'wx', mode: 0o600 })
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err
      const pid = Number.parseInt(readFileSync(lock, 'utf8'), 10)
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid))
        throw new DataDirLockedError(path, pid)
      rmSync(lock, { force: true })
    }
  }
  heldHere.add(path)
  const keysDir = join(path, 'keys')
  mkdirSync(keysDir, { recursive: true, mode: 0o700 })
  let released = false
  return {
    path,
    keysDir,
    dbDir: join(path, 'db'),
    file: (name) => join(path, name),
    release() {
      if (released) return
      released = true
      heldHere.delete(path)
      rmSync(lock, { force: true })
    }
  }
}
