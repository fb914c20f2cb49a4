// Key files: written 0600 by rename (a crash leaves the old file or the new, never half) and
// refused on read when group or others can read them (L5, docs/THREATS.md). Shared by the plain
// keys (identity.ts) and the encrypted operator keystore (operator-keystore.ts).
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import type { Logger } from '../common/log.ts'
import { KeyFileError } from './errors.ts'

export function writeSecret(file: string, data: Uint8Array | string): void {
  const tmp = `${file}.${process.pid}.tmp`
  rmSync(tmp, { force: true })
  writeFileSync(tmp, data, { mode: 0o600, flag: 'wx' })
  renameSync(tmp, file)
}

/**
 * A key that others on the machine can read is not this node's alone any more (L5,
 * docs/THREATS.md): refused, not only warned about. Throws KeyFileError (what to do in it).
 */
export function readSecret(file: string, _log?: Logger): Buffer {
  const mode = statSync(file).mode & 0o777
  if (process.platform !== 'win32' && (mode & 0o077) !== 0)
    throw new KeyFileError(
      file,
      `is readable by group or others (mode ${mode.toString(8).padStart(3, '0')}); run \`chmod 600 ${file}\` and start again`
    )
  return readFileSync(file)
}

/** Writes a secret so that only this user can read it, whatever was at that path before. */
export function writeSecretFile(file: string, data: Uint8Array | string): void {
  writeSecret(file, data)
}
