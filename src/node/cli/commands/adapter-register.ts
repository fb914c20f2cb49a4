// `openlora adapter register DIR`: registers a trained adapter in the AdapterRegistry with the
// datanets its signed training record names as its declared training data, so the contributor
// pools of its outputs go only to those datanets (issue 15's H5 binding follows from training,
// not from what an uploader claims). The checks and the registration are
// src/protocols/training/registration.ts (the gateway's ModelFactory route uses the same).
import { AdapterRegistrationError, registerTrainedAdapter } from '../../../protocols/training/registration.ts'
import { adapterCid } from '../../../runtime/formats/identity.ts'
import { readTrainingRecord } from '../../../runtime/training/record.ts'
import { type Command, UsageError } from '../command.ts'
import { chainOptions, clientFromFlags } from './chain-options.ts'
import { print } from './datanet-shared.ts'

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
    const record = await readTrainingRecord(dir).catch((err: Error) => {
      throw new UsageError(
        `${dir}: no readable training-record.json (${err.message}); train it with openlora train`
      )
    })
    const cid = await adapterCid(dir)
    const client = await clientFromFlags(values, true)
    const out = await registerTrainedAdapter(client, { cid, record, feePer1kTokens: fee }).catch((err) => {
      throw err instanceof AdapterRegistrationError ? new UsageError(`${dir}: ${err.message}`) : err
    })
    print(values.json === true, out, () =>
      [
        `adapter ${cid} registered as ${out.adapterId} (owner ${out.owner})`,
        ...out.datanets.map((d) => `  trained on datanet ${d.id} (${d.weightBps / 100}%)`)
      ].join('\n')
    )
    return 0
  }
}
