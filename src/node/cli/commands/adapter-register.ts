// `openlora adapter register DIR`: registers a trained adapter in the AdapterRegistry with the
// datanets its signed training record names as its declared training data, so the contributor
// pools of its outputs go only to those datanets (issue 15's H5 binding follows from training,
// not from what an uploader claims). The record must verify, must describe these exact adapter
// bytes (its CID), and every datanet version it names must already be on-chain with the same
// root: a record cannot declare data the chain does not know.
import { getAddress } from 'viem'
import { cidDigest } from '../../../crypto/cid.ts'
import { type Hex, toHex } from '../../../crypto/hash.ts'
import { verifyTrainingRecord } from '../../../protocols/training/record-verify.ts'
import { adapterCid } from '../../../runtime/formats/identity.ts'
import { readTrainingRecord, type SignedTrainingRecord } from '../../../runtime/training/record.ts'
import { type Command, UsageError } from '../command.ts'
import { chainOptions, clientFromFlags } from './chain-options.ts'
import { rootsFromChain } from './datanet-chain.ts'
import { print } from './datanet-shared.ts'

const BPS = 10_000

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

export const adapterRegisterCommand: Command = {
  name: 'adapter register',
  summary: 'register a trained adapter on-chain, declaring the datanets of its training record',
  positionals: 'DIR',
  options: {
    ...chainOptions,
    fee: { type: 'string', description: 'fee in wei per 1k tokens (default 0)', valueName: 'WEI' }
  },
  async run({ values, positionals }) {
    if (positionals.length !== 1)
      throw new UsageError('give exactly one adapter DIR (with its training-record.json)')
    const dir = positionals[0]!
    let fee = 0n
    if (values.fee !== undefined) {
      if (!/^\d{1,30}$/.test(String(values.fee)))
        throw new UsageError(`--fee must be a whole number of wei, got "${values.fee}"`)
      fee = BigInt(String(values.fee))
    }
    const rec = await readTrainingRecord(dir).catch((err: Error) => {
      throw new UsageError(
        `${dir}: no readable training-record.json (${err.message}); train it with openlora train`
      )
    })
    if (!(await verifyTrainingRecord(rec)))
      throw new UsageError(`${dir}: the training record's signature does not verify`)
    const cid = await adapterCid(dir)
    if (cid !== rec.body.adapterCid)
      throw new UsageError(
        `${dir}: the adapter is ${cid}, but its training record describes ${rec.body.adapterCid}`
      )
    const client = await clientFromFlags(values, true)
    const named = rec.body.datanets.map((d) => ({ id: d.id as Hex, version: d.version }))
    const onChain = await rootsFromChain(client, named)
    for (const d of rec.body.datanets) {
      const r = onChain.find(
        (v) => v.datanetId.toLowerCase() === d.id.toLowerCase() && v.version === d.version
      )
      if (!r)
        throw new UsageError(
          `datanet ${d.id} version ${d.version} is not on-chain; run \`openlora datanet register --datanet ${d.id}\` first`
        )
      if (r.root.toLowerCase() !== d.root.toLowerCase())
        throw new UsageError(
          `datanet ${d.id} version ${d.version} has root ${r.root} on-chain, the record says ${d.root}`
        )
    }
    const datanets = declaredDatanets(rec)
    const adapterId = toHex(cidDigest(cid))
    const tx = await client.registerAdapter({
      adapterId,
      modelHash: rec.body.baseModel.weightsHash as Hex,
      feePer1kTokens: fee,
      datanets
    })
    const out = { adapter: cid, adapterId, owner: getAddress(client.account!.address), datanets, tx: tx.hash }
    print(values.json === true, out, () =>
      [
        `adapter ${cid} registered as ${adapterId} (owner ${out.owner})`,
        ...datanets.map((d) => `  trained on datanet ${d.id} (${d.weightBps / 100}%)`)
      ].join('\n')
    )
    return 0
  }
}
