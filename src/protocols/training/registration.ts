// Registering a trained adapter on-chain with the datanets its signed training record names as its
// declared training data, so the contributor pools of its outputs go only to those datanets
// (issue 15's H5 binding follows from training, not from what an uploader claims). Shared by
// `openlora adapter register DIR` and the gateway's training-job route (the ModelFactory page).
// The record must verify and describe these exact adapter bytes (its CID), and every datanet
// version it names must already be on-chain with the same root: a record cannot declare data the
// chain does not know.
import { getAddress } from 'viem'
import type { ChainClient } from '../../chain/client.ts'
import { OpenLoraError } from '../../common/errors.ts'
import { cidDigest } from '../../crypto/cid.ts'
import { type Hex, toHex } from '../../crypto/hash.ts'
import type { SignedTrainingRecord } from '../../runtime/training/record.ts'
import { verifyTrainingRecord } from './record-verify.ts'

const BPS = 10_000
const ZERO = /^0x0*$/

export class AdapterRegistrationError extends OpenLoraError<'ADAPTER_REGISTRATION_REFUSED'> {
  constructor(message: string) {
    super('ADAPTER_REGISTRATION_REFUSED', message)
  }
}

/**
 * The record's datanets with equal weights summing to 10000 bps (the first takes the remainder);
 * a run trains on its datanets' rows alike, so no datanet is worth more than another.
 */
export function declaredDatanets(rec: SignedTrainingRecord): { id: Hex; weightBps: number }[] {
  const ids = [...new Set(rec.body.datanets.map((d) => d.id.toLowerCase() as Hex))]
  if (ids.length === 0) return []
  const each = Math.floor(BPS / ids.length)
  return ids.map((id, i) => ({ id, weightBps: each + (i === 0 ? BPS - each * ids.length : 0) }))
}

export interface AdapterRegistration {
  adapter: string
  adapterId: Hex
  owner: string
  datanets: { id: Hex; weightBps: number }[]
  tx: Hex
}

/** The version's root on-chain, or null when the datanet or the version is not there. */
async function rootOnChain(client: ChainClient, id: Hex, version: number): Promise<string | null> {
  if (!(await client.datanetExists(id))) return null
  const root = await client.datanetVersionRoot(id, version).catch(() => null)
  return root === null || ZERO.test(root) ? null : root.toLowerCase()
}

/**
 * Checks `rec` against `cid` and the chain, then registers the adapter as the client account's
 * (commit–reveal), fee `feePer1kTokens`. AdapterRegistrationError names what to fix.
 */
export async function registerTrainedAdapter(
  client: ChainClient,
  p: { cid: string; record: SignedTrainingRecord; feePer1kTokens?: bigint }
): Promise<AdapterRegistration> {
  const rec = p.record
  if (!(await verifyTrainingRecord(rec)))
    throw new AdapterRegistrationError("the training record's signature does not verify")
  if (p.cid !== rec.body.adapterCid)
    throw new AdapterRegistrationError(
      `the adapter is ${p.cid}, but its training record describes ${rec.body.adapterCid}`
    )
  for (const d of rec.body.datanets) {
    const root = await rootOnChain(client, d.id as Hex, d.version)
    if (root === null)
      throw new AdapterRegistrationError(
        `datanet ${d.id} version ${d.version} is not on-chain; run \`openlora datanet register --datanet ${d.id}\` first`
      )
    if (root !== d.root.toLowerCase())
      throw new AdapterRegistrationError(
        `datanet ${d.id} version ${d.version} has root ${root} on-chain, the record says ${d.root}`
      )
  }
  const adapterId = toHex(cidDigest(p.cid))
  const owner = await client.adapterOwner(adapterId)
  if (!ZERO.test(owner))
    throw new AdapterRegistrationError(`adapter ${p.cid} is already registered (owner ${getAddress(owner)})`)
  const datanets = declaredDatanets(rec)
  const tx = await client.registerAdapter({
    adapterId,
    modelHash: rec.body.baseModel.weightsHash as Hex,
    feePer1kTokens: p.feePer1kTokens ?? 0n,
    datanets
  })
  return { adapter: p.cid, adapterId, owner: getAddress(client.account!.address), datanets, tx: tx.hash }
}
