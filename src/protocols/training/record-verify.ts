// Checks a training record's signature (src/runtime/training/record.ts) against the libp2p peer
// id it names: the same Ed25519 check as receipts and adverts. Here, above the runtime, because
// the layering rule keeps libp2p out of src/runtime; the /openlora/train protocol will use it too.
import { peerIdFromString } from '@libp2p/peer-id'
import { type SignedTrainingRecord, signingBytes } from '../../runtime/training/record.ts'

/** True when the signature is the signer's over this body. */
export async function verifyTrainingRecord(rec: SignedTrainingRecord): Promise<boolean> {
  try {
    const pub = peerIdFromString(rec.signer).publicKey
    if (!pub) return false
    return await pub.verify(signingBytes(rec.body), new Uint8Array(Buffer.from(rec.signature, 'base64')))
  } catch {
    return false
  }
}
