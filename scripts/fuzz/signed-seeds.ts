// Seeds that need real signatures (adverts, receipts): built with fresh keys when the corpus is
// written (`npm run fuzz -- --save-seeds`), so the mutator starts from inputs that pass decoding.
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { cidForBytes } from '../../src/crypto/cid.ts'
import { hashTokenIds, sha256Hex } from '../../src/crypto/hash.ts'
import { signOperatorBinding } from '../../src/protocols/adverts/binding.ts'
import { buildAdvertBody, signAdvert } from '../../src/protocols/adverts/codec.ts'
import { amountDueFor, signReceipt, ZERO_ADDRESS } from '../../src/protocols/infer/receipt.ts'
import { emptyCapabilities } from '../../src/serving/capability.ts'

export async function advertSeed(): Promise<Uint8Array> {
  const key = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(key).toString()
  const account = privateKeyToAccount(generatePrivateKey())
  const body = buildAdvertBody({
    peerId,
    operator: account.address,
    operatorSig: await signOperatorBinding(account, peerId),
    version: '0.1.0',
    addrs: [`/ip4/127.0.0.1/tcp/4010/p2p/${peerId}`],
    caps: emptyCapabilities({ cpu: { model: 'x86', cores: 2, ramMb: 1024 }, gpus: [] }, '1000'),
    seq: 1,
    now: 1_700_000_000_000,
    ttlMs: 60_000,
    adapterListLimit: 64
  })
  return (await signAdvert(body, key)).bytes
}

export async function receiptSeed(): Promise<Uint8Array> {
  const key = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(key).toString()
  const operator = privateKeyToAccount(generatePrivateKey())
  const r = await signReceipt(
    {
      v: 1,
      jobId: `0x${'ab'.repeat(16)}`,
      peerId,
      operator: operator.address,
      modelId: 'tiny',
      modelHash: sha256Hex('weights'),
      adapter: cidForBytes(new Uint8Array([1, 2, 3])),
      inputHash: hashTokenIds([1, 2]),
      outputHash: hashTokenIds([3]),
      promptTokens: 2,
      outputTokens: 1,
      pricePer1kTokens: '1000000000000',
      amountDue: amountDueFor(2, 1, '1000000000000'),
      attribution: { method: 'provenance', datanets: [], contributors: [], proofHash: sha256Hex('p') },
      voucher: null,
      startedAt: 1_700_000_000_000,
      finishedAt: 1_700_000_000_500
    },
    {
      peerId,
      signPeer: (d: Uint8Array) => key.sign(d),
      operator,
      domain: { chainId: 0, verifyingContract: ZERO_ADDRESS }
    }
  )
  return new TextEncoder().encode(JSON.stringify(r))
}
