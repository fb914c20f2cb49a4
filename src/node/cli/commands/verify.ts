// `openlora verify FILE`: check a receipt (or what `openlora infer --out` wrote) and name the
// check and field that failed.
import { hexBytes, uint32, z } from '../../../common/schema.ts'
import { type ReceiptExpectations, verifyReceipt } from '../../../protocols/infer/receipt.ts'
import type { Command } from '../../cli/command.ts'
import { UsageError } from '../../cli/command.ts'
import { readJsonInput } from '../../cli/json-input.ts'

const MAX_FILE_BYTES = 4 * 1024 * 1024

const ids = z.array(uint32).max(1 << 20)
/** Either a bare receipt (checked by verifyReceipt) or what `openlora infer --out` writes. */
const VerifyFileSchema = z.looseObject({
  receipt: z.unknown().optional(),
  promptIds: ids.optional(),
  outputIds: ids.optional(),
  servedBy: z.string().max(128).optional(),
  jobId: hexBytes(16).optional(),
  attributionProof: z.unknown().optional()
})

export const verifyCommand: Command = {
  name: 'verify',
  summary: 'verify a receipt file: schema, amounts, token hashes, peer and operator signatures',
  positionals: 'FILE',
  options: { json: { type: 'boolean', description: 'print the result as JSON' } },
  async run({ values, positionals }) {
    const file = positionals[0]
    if (!file || positionals.length > 1) throw new UsageError('give exactly one FILE')
    const doc = await readJsonInput(file, VerifyFileSchema, {
      what: 'receipt file',
      maxBytes: MAX_FILE_BYTES
    })
    const wrapped = doc.receipt !== undefined
    const receipt = wrapped ? doc.receipt : doc
    const expect: ReceiptExpectations = wrapped
      ? {
          ...(doc.promptIds ? { promptIds: doc.promptIds } : {}),
          ...(doc.outputIds ? { outputIds: doc.outputIds } : {}),
          ...(doc.servedBy !== undefined ? { peerId: doc.servedBy } : {}),
          ...(doc.jobId !== undefined ? { jobId: doc.jobId } : {}),
          ...('attributionProof' in doc ? { attributionProof: doc.attributionProof } : {})
        }
      : {}
    const v = await verifyReceipt(receipt, expect)
    if (values.json === true) console.log(JSON.stringify(v.ok ? { ok: true } : v))
    else if (v.ok)
      console.log(
        `receipt OK: job ${v.receipt.body.jobId} served by ${v.receipt.body.peerId}, operator ${v.receipt.body.operator}`
      )
    else console.log(`receipt FAILED at ${v.check}: field ${v.field}: ${v.message}`)
    return v.ok ? 0 : 1
  }
}
