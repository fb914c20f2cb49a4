// Builds real signed adverts (real Ed25519 peer key, real secp256k1 operator key) for tests.
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts'
import { signOperatorBinding } from '../../src/protocols/adverts/binding.ts'
import { buildAdvertBody, type SignedAdvert, signAdvert } from '../../src/protocols/adverts/codec.ts'
import { type Capabilities, emptyCapabilities } from '../../src/serving/capability.ts'

export interface TestPeer {
  key: PrivateKey
  peerId: string
  account: PrivateKeyAccount
  binding: Uint8Array
}

export async function testPeer(): Promise<TestPeer> {
  const key = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(key).toString()
  const account = privateKeyToAccount(generatePrivateKey())
  return { key, peerId, account, binding: await signOperatorBinding(account, peerId) }
}

export function testCaps(patch: Partial<Capabilities> = {}): Capabilities {
  return {
    ...emptyCapabilities({ cpu: { model: 'test cpu', cores: 2, ramMb: 4096 }, gpus: [] }),
    ...patch
  }
}

export async function testAdvert(
  p: TestPeer,
  opts: { caps?: Partial<Capabilities>; seq?: number; now?: number; ttlMs?: number; listLimit?: number } = {}
): Promise<SignedAdvert> {
  const now = opts.now ?? Date.now()
  const body = buildAdvertBody({
    peerId: p.peerId,
    operator: p.account.address,
    operatorSig: p.binding,
    version: '0.1.0',
    addrs: [`/ip4/127.0.0.1/tcp/4010/p2p/${p.peerId}`],
    caps: testCaps(opts.caps),
    seq: opts.seq ?? 1,
    now,
    ttlMs: opts.ttlMs ?? 60_000,
    adapterListLimit: opts.listLimit ?? 64
  })
  return signAdvert(body, p.key)
}

/** Fake adapter CIDs: valid-looking distinct strings are all a Bloom filter or list needs. */
export function fakeCids(n: number, prefix = 'a'): string[] {
  return Array.from({ length: n }, (_, i) => `bafy${prefix}${i.toString(36).padStart(55, '0')}`)
}
