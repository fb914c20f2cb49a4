// The training record stored next to a trained adapter (training-record.json): what was trained
// from what (base model id and weights hash, data digest, datanets when given), how
// (hyperparameters, seed), the loss curve and the output CID, signed with the node's libp2p
// Ed25519 key over its canonical CBOR so anyone holding the file can check who claims it
// (verification needs libp2p's key types, so it lives in src/protocols/training/record-verify.ts).
// It does not enter the adapter's CID (that covers adapter_config.json + the weights only).
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { encodeCanonical } from '../../crypto/cbor.ts'

export const RECORD_FILE = 'training-record.json'
const DOMAIN = 'openlora/training-record/1'

export interface TrainingRecordBody {
  /** `format`: the base weights as trained against (fp32, or serving's int8/int4; absent before formats: fp32) */
  baseModel: { id: string; weightsHash: string; format?: 'fp32' | 'int8' | 'int4' }
  /** the datanet versions the data came from and who contributed them; empty for local files */
  datanets: DatanetSource[]
  /**
   * sha256 of the data (the file's bytes, or the datanet rows' JSONL), its kind, the training and
   * held-out sequences after --seq-len, and the tokens trained over the whole run
   */
  data: {
    kind: 'tokens' | 'jsonl' | 'datanet'
    sha256: string
    sequences: number
    evalSequences: number
    trainedTokens: number
  }
  lora: { r: number; alpha: number; rslora: boolean; targets: string[]; init: string }
  hyper: {
    optimizer: string
    lr: number
    steps: number
    weightDecay: number | null
    seed: number
    batch: number | null
    seqLen: number | null
    packing: boolean
    warmup: number
    schedule: string
    evalFraction: number
  }
  /** loss at each step, before its update */
  losses: number[]
  /** held-out loss at each checkpoint and after the last step (--eval-fraction) */
  evalLosses: { step: number; loss: number }[]
  adapterCid: string
  /** unix ms when training finished */
  finishedAt: number
}

export interface DatanetSource {
  id: string
  version: number
  /** the version's Merkle root over its contributions */
  root: string
  /** distinct contributor addresses of the version, sorted */
  contributors: string[]
}

export interface SignedTrainingRecord {
  body: TrainingRecordBody
  /** the signing node's libp2p peer id */
  signer: string
  /** base64 Ed25519 signature over signingBytes(body) */
  signature: string
}

export function signingBytes(body: TrainingRecordBody): Uint8Array {
  return encodeCanonical({ domain: DOMAIN, body })
}

export interface RecordSigner {
  peerId: string
  sign(data: Uint8Array): Promise<Uint8Array> | Uint8Array
}

export async function signTrainingRecord(
  body: TrainingRecordBody,
  signer: RecordSigner
): Promise<SignedTrainingRecord> {
  const sig = await signer.sign(signingBytes(body))
  return { body, signer: signer.peerId, signature: Buffer.from(sig).toString('base64') }
}

export async function writeTrainingRecord(dir: string, rec: SignedTrainingRecord): Promise<void> {
  await writeFile(join(dir, RECORD_FILE), `${JSON.stringify(rec, null, 2)}\n`)
}

export async function readTrainingRecord(dir: string): Promise<SignedTrainingRecord> {
  return JSON.parse(await readFile(join(dir, RECORD_FILE), 'utf8')) as SignedTrainingRecord
}
