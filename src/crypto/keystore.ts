// Ethereum keystore v3 (Web3 Secret Storage Definition), the format geth, Foundry's
// `cast wallet` and most wallets read and write, so an operator can move the reward key
// between them. Decrypts scrypt and pbkdf2 files; writes scrypt with geth's standard cost.
// Built on node:crypto (scrypt, pbkdf2, aes-128-ctr) and @noble/hashes (keccak, scrypt): no keystore
// package, because the few on npm are unmaintained or pull in ethers/web3 wholesale.
import {
  createCipheriv,
  createDecipheriv,
  pbkdf2Sync,
  randomBytes,
  randomUUID,
  scryptSync
} from 'node:crypto'
import { scrypt } from '@noble/hashes/scrypt.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { privateKeyToAddress } from 'viem/accounts'
import { OpenLoraError } from '../common/errors.ts'

export class KeystoreError extends OpenLoraError<'KEYSTORE'> {
  constructor(message: string) {
    super('KEYSTORE', message)
  }
}

export interface ScryptParams {
  n: number
  r: number
  p: number
}

/** geth's StandardScryptN/P: about 1 s and 256 MiB per derivation, which is the point. */
export const STANDARD_SCRYPT: ScryptParams = { n: 262_144, r: 8, p: 1 }
// Bounds on costs read from a file: a hostile or corrupt file must not make the node allocate
// gigabytes or spin for minutes. They admit every geth/cast setting (geth's max is n=2^18).
const MAX_SCRYPT_MEMORY = 1024 * 1024 * 1024
const MAX_PBKDF2_ROUNDS = 10_000_000

export interface KeystoreV3 {
  version: 3
  id: string
  address: string
  crypto: {
    cipher: 'aes-128-ctr'
    cipherparams: { iv: string }
    ciphertext: string
    kdf: 'scrypt' | 'pbkdf2'
    kdfparams: Record<string, unknown>
    mac: string
  }
}

function hexField(v: unknown, name: string, bytes?: number): Buffer {
  if (typeof v !== 'string' || !/^(0x)?([0-9a-fA-F]{2})+$/.test(v))
    throw new KeystoreError(`${name} must be a hex string`)
  const b = Buffer.from(v.replace(/^0x/, ''), 'hex')
  if (bytes !== undefined && b.length !== bytes) throw new KeystoreError(`${name} must be ${bytes} bytes`)
  return b
}

function intField(o: Record<string, unknown>, name: string, min: number, max: number): number {
  const v = o[name]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    throw new KeystoreError(`kdfparams.${name} must be an integer in [${min}, ${max}]`)
  return v
}

function deriveKey(kdf: unknown, params: unknown, password: string): Buffer {
  if (typeof params !== 'object' || params === null) throw new KeystoreError('kdfparams must be an object')
  const p = params as Record<string, unknown>
  const salt = hexField(p.salt, 'kdfparams.salt')
  const dklen = intField(p, 'dklen', 32, 64)
  const pw = Buffer.from(password.normalize('NFKC'), 'utf8')
  if (kdf === 'scrypt') {
    const n = intField(p, 'n', 2, 2 ** 24)
    if ((n & (n - 1)) !== 0) throw new KeystoreError('kdfparams.n must be a power of two')
    const r = intField(p, 'r', 1, 64)
    const par = intField(p, 'p', 1, 64)
    const mem = 128 * n * r
    if (mem > MAX_SCRYPT_MEMORY)
      throw new KeystoreError(`scrypt n*r needs ${mem} bytes; at most 1 GiB allowed`)
    // OpenSSL (node:crypto, fast) refuses n >= 2^(16r), which the spec's own vector uses (r=1);
    // @noble/hashes computes those, about 5x slower.
    if (Math.log2(n) < 16 * r)
      return scryptSync(pw, salt, dklen, { N: n, r, p: par, maxmem: 2 * mem + 1024 * 1024 })
    return Buffer.from(scrypt(pw, salt, { N: n, r, p: par, dkLen: dklen, maxmem: 2 * mem + 1024 * 1024 }))
  }
  if (kdf === 'pbkdf2') {
    if (p.prf !== 'hmac-sha256') throw new KeystoreError('kdfparams.prf must be hmac-sha256')
    const c = intField(p, 'c', 1, MAX_PBKDF2_ROUNDS)
    return pbkdf2Sync(pw, salt, c, dklen, 'sha256')
  }
  throw new KeystoreError(`kdf ${JSON.stringify(kdf)} is not supported; scrypt or pbkdf2 are`)
}

function mac(derived: Buffer, ciphertext: Buffer): Buffer {
  return Buffer.from(keccak_256(Buffer.concat([derived.subarray(16, 32), ciphertext])))
}

/** Parses a keystore's JSON text; the error says which field is wrong. */
export function parseKeystore(text: string): KeystoreV3 {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new KeystoreError(`not JSON: ${(err as Error).message}`)
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new KeystoreError('must be a JSON object')
  const o = json as Record<string, unknown>
  if (o.version !== 3) throw new KeystoreError(`version must be 3, got ${JSON.stringify(o.version)}`)
  // geth wrote "Crypto" in early versions and still accepts it.
  const c = (o.crypto ?? o.Crypto) as Record<string, unknown> | undefined
  if (typeof c !== 'object' || c === null) throw new KeystoreError('crypto section is missing')
  if (c.cipher !== 'aes-128-ctr') throw new KeystoreError('crypto.cipher must be aes-128-ctr')
  const cp = c.cipherparams as Record<string, unknown> | undefined
  hexField(cp?.iv, 'crypto.cipherparams.iv', 16)
  hexField(c.ciphertext, 'crypto.ciphertext', 32)
  hexField(c.mac, 'crypto.mac', 32)
  if (c.kdf !== 'scrypt' && c.kdf !== 'pbkdf2') throw new KeystoreError('crypto.kdf must be scrypt or pbkdf2')
  return {
    version: 3,
    id: typeof o.id === 'string' ? o.id : '',
    address: typeof o.address === 'string' ? o.address : '',
    crypto: c as KeystoreV3['crypto']
  }
}

/** Decrypts to the 0x-prefixed private key; a wrong password fails the MAC check. */
export function decryptKeystore(ks: KeystoreV3, password: string): `0x${string}` {
  const c = ks.crypto
  const derived = deriveKey(c.kdf, c.kdfparams, password)
  const ciphertext = hexField(c.ciphertext, 'crypto.ciphertext', 32)
  const expected = hexField(c.mac, 'crypto.mac', 32)
  if (!mac(derived, ciphertext).equals(expected))
    throw new KeystoreError('wrong password (the keystore MAC does not match)')
  const d = createDecipheriv('aes-128-ctr', derived.subarray(0, 16), hexField(c.cipherparams.iv, 'iv', 16))
  const key = `0x${Buffer.concat([d.update(ciphertext), d.final()]).toString('hex')}` as const
  if (ks.address !== '') {
    const want = ks.address.replace(/^0x/, '').toLowerCase()
    if (privateKeyToAddress(key).slice(2).toLowerCase() !== want)
      throw new KeystoreError(`decrypted key does not belong to the file's address 0x${want}`)
  }
  return key
}

/** Encrypts a private key the way geth does (scrypt, aes-128-ctr, random salt/iv, uuid v4). */
export function encryptKeystore(
  privateKey: `0x${string}`,
  password: string,
  scrypt: ScryptParams = STANDARD_SCRYPT
): KeystoreV3 {
  const key = hexField(privateKey, 'private key', 32)
  const salt = randomBytes(32)
  const iv = randomBytes(16)
  const kdfparams = { dklen: 32, n: scrypt.n, r: scrypt.r, p: scrypt.p, salt: salt.toString('hex') }
  const derived = deriveKey('scrypt', kdfparams, password)
  const cipher = createCipheriv('aes-128-ctr', derived.subarray(0, 16), iv)
  const ciphertext = Buffer.concat([cipher.update(key), cipher.final()])
  return {
    version: 3,
    id: randomUUID(),
    address: privateKeyToAddress(privateKey).slice(2).toLowerCase(),
    crypto: {
      cipher: 'aes-128-ctr',
      cipherparams: { iv: iv.toString('hex') },
      ciphertext: ciphertext.toString('hex'),
      kdf: 'scrypt',
      kdfparams,
      mac: mac(derived, ciphertext).toString('hex')
    }
  }
}
