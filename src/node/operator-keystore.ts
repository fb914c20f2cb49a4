// The operator key encrypted at rest: <keys>/operator.json in keystore v3 format (geth, cast
// wallet). The node cannot prompt at start (it runs under systemd or in a container), so the
// password comes from a file named by OPENLORA_KEYSTORE_PASSWORD_FILE; `openlora keys` prompts.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts'
import type { Logger } from '../common/log.ts'
import { decryptKeystore, KeystoreError, type KeystoreV3, parseKeystore } from '../crypto/keystore.ts'
import { KeyFileError } from './errors.ts'
import { readSecret } from './secret-file.ts'

export const PASSWORD_FILE_ENV = 'OPENLORA_KEYSTORE_PASSWORD_FILE'

export function operatorKeystorePath(keysDir: string): string {
  return join(keysDir, 'operator.json')
}

export function plainOperatorKeyPath(keysDir: string): string {
  return join(keysDir, 'operator.key')
}

/**
 * Reads a password file the way geth and cast do: the first line, without its line ending, so
 * `echo secret > pw` works. An empty password is refused: it would encrypt with nothing.
 */
export function readPasswordFile(file: string): string {
  let text: string
  try {
    text = readSecret(file).toString('utf8')
  } catch (err) {
    if (err instanceof KeyFileError) throw err
    throw new KeyFileError(file, `cannot read the password file: ${(err as Error).message}`)
  }
  const pw = text.split(/\r?\n/)[0] ?? ''
  if (pw === '') throw new KeyFileError(file, 'the password file is empty')
  return pw
}

export function readKeystoreFile(file: string): KeystoreV3 {
  try {
    return parseKeystore(readSecret(file).toString('utf8'))
  } catch (err) {
    if (err instanceof KeyFileError) throw err
    if (err instanceof KeystoreError) throw new KeyFileError(file, `not a keystore v3 file: ${err.message}`)
    throw new KeyFileError(file, (err as Error).message)
  }
}

export function decryptKeystoreFile(file: string, password: string): `0x${string}` {
  try {
    return decryptKeystore(readKeystoreFile(file), password)
  } catch (err) {
    if (err instanceof KeystoreError) throw new KeyFileError(file, err.message)
    throw err
  }
}

/**
 * The encrypted operator key if this data directory has one, else undefined (the caller then
 * uses or creates the plain operator.key). Both present is refused: which one pays is ambiguous.
 */
export function loadKeystoreOperator(keysDir: string, log: Logger): PrivateKeyAccount | undefined {
  const file = operatorKeystorePath(keysDir)
  if (!existsSync(file)) return undefined
  if (existsSync(plainOperatorKeyPath(keysDir)))
    throw new KeyFileError(
      file,
      `both it and ${plainOperatorKeyPath(keysDir)} exist; keep one (remove the plain key once the keystore is backed up)`
    )
  const pwFile = process.env[PASSWORD_FILE_ENV]
  if (pwFile === undefined || pwFile === '')
    throw new KeyFileError(file, `is encrypted; set ${PASSWORD_FILE_ENV} to a file holding its password`)
  const account = privateKeyToAccount(decryptKeystoreFile(file, readPasswordFile(pwFile)))
  log.info('unlocked operator keystore', { file, address: account.address })
  return account
}
