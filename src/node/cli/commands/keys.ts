// `openlora keys new|import|export`: the operator (reward) key encrypted at rest in keystore v3
// format, interchangeable with geth and Foundry (`cast wallet import --keystore-dir`,
// `cast wallet address --keystore FILE`). The node unlocks it at start with the password file
// named by OPENLORA_KEYSTORE_PASSWORD_FILE.
import { existsSync, mkdirSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { generatePrivateKey, privateKeyToAddress } from 'viem/accounts'
import { encryptKeystore, STANDARD_SCRYPT } from '../../../crypto/keystore.ts'
import { KeyFileError } from '../../errors.ts'
import {
  decryptKeystoreFile,
  operatorKeystorePath,
  plainOperatorKeyPath,
  readPasswordFile
} from '../../operator-keystore.ts'
import { readSecret, writeSecretFile } from '../../secret-file.ts'
import { type Command, type OptionSpec, UsageError } from '../command.ts'
import { getPassword } from '../prompt.ts'
import { configFromFlags, configOptions } from './shared.ts'

const passwordOptions: Record<string, OptionSpec> = {
  'password-file': {
    type: 'string',
    description: 'read the password from the first line of FILE (else asked on the terminal)',
    valueName: 'FILE'
  },
  'scrypt-n': {
    type: 'string',
    description: `scrypt cost of a new keystore (default ${STANDARD_SCRYPT.n}, geth's; lower only for tests)`,
    valueName: 'N'
  }
}

type Values = Record<string, string | boolean | string[] | undefined>

function keysDirOf(values: Values): string {
  const dir = join(configFromFlags(values).dataDir, 'keys')
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  return dir
}

function scryptOf(values: Values) {
  const raw = values['scrypt-n']
  if (raw === undefined) return STANDARD_SCRYPT
  const n = Number(raw)
  if (!Number.isSafeInteger(n) || n < 1024 || (n & (n - 1)) !== 0 || n > 2 ** 20)
    throw new UsageError(`--scrypt-n must be a power of two from 1024 to 1048576, got "${raw}"`)
  return { ...STANDARD_SCRYPT, n }
}

function refuseExisting(keysDir: string): void {
  for (const f of [operatorKeystorePath(keysDir), plainOperatorKeyPath(keysDir)])
    if (existsSync(f)) throw new KeyFileError(f, 'an operator key already exists here; move it aside first')
}

async function storeEncrypted(keysDir: string, key: `0x${string}`, values: Values): Promise<void> {
  const pw = await getPassword(values['password-file'] as string | undefined, readPasswordFile, true)
  writeSecretFile(
    operatorKeystorePath(keysDir),
    `${JSON.stringify(encryptKeystore(key, pw, scryptOf(values)))}\n`
  )
}

const newCommand: Command = {
  name: 'keys new',
  summary: 'create an encrypted operator (reward) key in this data directory',
  options: { ...configOptions, ...passwordOptions },
  async run({ values }) {
    const keysDir = keysDirOf(values)
    refuseExisting(keysDir)
    const key = generatePrivateKey()
    await storeEncrypted(keysDir, key, values)
    console.log(`operator  ${privateKeyToAddress(key)}\nkeystore  ${operatorKeystorePath(keysDir)}`)
    return 0
  }
}

const importCommand: Command = {
  name: 'keys import',
  summary:
    "import an operator key: a keystore v3 file (geth, cast) or a hex key file; this data directory's own operator.key is encrypted in place",
  positionals: 'FILE',
  options: { ...configOptions, ...passwordOptions },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError('give one FILE')
    const src = resolve(positionals[0] as string)
    const keysDir = keysDirOf(values)
    const plain = plainOperatorKeyPath(keysDir)
    const inPlace = src === resolve(plain)
    if (existsSync(operatorKeystorePath(keysDir)) || (existsSync(plain) && !inPlace)) refuseExisting(keysDir)
    let text: string
    try {
      text = readSecret(src).toString('utf8').trim()
    } catch (err) {
      throw new KeyFileError(src, (err as Error).message)
    }
    let address: string
    if (text.startsWith('{')) {
      // A keystore: check the password opens it, then keep the file as it is (its own KDF).
      const pw = await getPassword(values['password-file'] as string | undefined, readPasswordFile, false)
      address = privateKeyToAddress(decryptKeystoreFile(src, pw))
      writeSecretFile(operatorKeystorePath(keysDir), `${text}\n`)
    } else {
      const hex = text.startsWith('0x') ? text : `0x${text}`
      if (!/^0x[0-9a-fA-F]{64}$/.test(hex))
        throw new KeyFileError(src, 'must hold a keystore v3 JSON or one 32-byte hex key')
      address = privateKeyToAddress(hex as `0x${string}`)
      await storeEncrypted(keysDir, hex as `0x${string}`, values)
    }
    // Only after the keystore is safely renamed into place does the plain copy go.
    if (inPlace) rmSync(plain)
    console.log(`operator  ${address}\nkeystore  ${operatorKeystorePath(keysDir)}`)
    return 0
  }
}

const exportCommand: Command = {
  name: 'keys export',
  summary: 'print the operator key as a keystore v3 file (encrypting a plain key with a new password)',
  options: {
    ...configOptions,
    ...passwordOptions,
    out: { type: 'string', description: 'write to FILE (mode 0600) instead of stdout', valueName: 'FILE' }
  },
  async run({ values }) {
    const keysDir = keysDirOf(values)
    let json: string
    if (existsSync(operatorKeystorePath(keysDir))) {
      json = readSecret(operatorKeystorePath(keysDir)).toString('utf8').trim()
    } else if (existsSync(plainOperatorKeyPath(keysDir))) {
      const hex = readSecret(plainOperatorKeyPath(keysDir)).toString('utf8').trim()
      if (!/^0x[0-9a-fA-F]{64}$/.test(hex))
        throw new KeyFileError(plainOperatorKeyPath(keysDir), 'must hold one 0x-prefixed 32-byte hex key')
      const pw = await getPassword(values['password-file'] as string | undefined, readPasswordFile, true)
      json = JSON.stringify(encryptKeystore(hex as `0x${string}`, pw, scryptOf(values)))
    } else {
      throw new KeyFileError(keysDir, 'no operator key here; `openlora keys new` creates one')
    }
    if (typeof values.out === 'string') writeSecretFile(resolve(values.out), `${json}\n`)
    else console.log(json)
    return 0
  }
}

export const keysCommands: Command[] = [newCommand, importCommand, exportCommand]
