// The node's two keys, created on first start and kept in <dataDir>/keys (mode 0600):
// - peer.key: libp2p Ed25519 private key (protobuf), so the peer id survives restarts;
// - operator.key: secp256k1 private key (hex) whose Ethereum address receives rewards, or
//   operator.json: the same key encrypted in keystore v3 format (operator-keystore.ts).
// The operator signs a binding to the peer id once per start; adverts carry that signature.
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts'
import type { Logger } from '../common/log.ts'
import type { Hex } from '../crypto/hash.ts'
import { signOperatorBinding } from '../protocols/adverts/binding.ts'
import { KeyFileError } from './errors.ts'
import { loadKeystoreOperator } from './operator-keystore.ts'

export interface NodeIdentity {
  privateKey: PrivateKey
  peerId: PeerId
  operator: {
    address: Hex
    account: PrivateKeyAccount
    /** EIP-191 signature binding `address` to `peerId` (operatorBindingMessage) */
    bindingSignature: Uint8Array
  }
}

function writeSecret(file: string, data: Uint8Array | string): void {
  const tmp = `${file}.${process.pid}.tmp`
  writeFileSync(tmp, data, { mode: 0o600, flag: 'wx' })
  renameSync(tmp, file)
}

function readSecret(file: string, log: Logger): Buffer {
  const mode = statSync(file).mode & 0o777
  if ((mode & 0o077) !== 0)
    log.warn('key file is readable by others; chmod 600 it', { file, mode: mode.toString(8) })
  return readFileSync(file)
}

export async function loadPeerKey(keysDir: string, log: Logger): Promise<PrivateKey> {
  const file = join(keysDir, 'peer.key')
  if (existsSync(file)) {
    try {
      const key = privateKeyFromProtobuf(readSecret(file, log))
      if (key.type !== 'Ed25519') throw new Error(`is a ${key.type} key; an Ed25519 key is required`)
      return key
    } catch (err) {
      throw new KeyFileError(file, (err as Error).message)
    }
  }
  const key = await generateKeyPair('Ed25519')
  writeSecret(file, privateKeyToProtobuf(key))
  log.info('created peer key', { file })
  return key
}

export function loadOperatorKey(keysDir: string, log: Logger): PrivateKeyAccount {
  // An encrypted keystore (operator.json, `openlora keys new|import`) wins over the plain file.
  const encrypted = loadKeystoreOperator(keysDir, log)
  if (encrypted) return encrypted
  const file = join(keysDir, 'operator.key')
  if (existsSync(file)) {
    const hex = readSecret(file, log).toString('utf8').trim()
    if (!/^0x[0-9a-fA-F]{64}$/.test(hex))
      throw new KeyFileError(file, 'must hold one 0x-prefixed 32-byte hex key')
    return privateKeyToAccount(hex as Hex)
  }
  const hex = generatePrivateKey()
  writeSecret(file, `${hex}\n`)
  log.info('created operator key', { file })
  return privateKeyToAccount(hex)
}

export async function loadIdentity(keysDir: string, log: Logger): Promise<NodeIdentity> {
  const privateKey = await loadPeerKey(keysDir, log)
  const peerId = peerIdFromPrivateKey(privateKey)
  const account = loadOperatorKey(keysDir, log)
  const bindingSignature = await signOperatorBinding(account, peerId.toString())
  return { privateKey, peerId, operator: { address: account.address, account, bindingSignature } }
}
