// The node's two keys, created on first start and kept in <dataDir>/keys (mode 0600):
// - peer.key: libp2p Ed25519 private key (protobuf), so the peer id survives restarts;
// - operator.key: secp256k1 private key (hex) whose Ethereum address receives rewards, or
//   operator.json: the same key encrypted in keystore v3 format (operator-keystore.ts).
// The operator signs a binding to the peer id once per start; adverts carry that signature.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts'
import type { Logger } from '../common/log.ts'
import type { NodeIdentity } from '../common/service.ts'
import type { Hex } from '../crypto/hash.ts'
import { signOperatorBinding } from '../protocols/adverts/binding.ts'
import { KeyFileError } from './errors.ts'
import { loadKeystoreOperator } from './operator-keystore.ts'
import { readSecret, writeSecret, writeSecretFile } from './secret-file.ts'

export type { NodeIdentity }

// Re-exported: callers read and write key files through identity.ts.
export { readSecret, writeSecretFile }

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
