// `openlora verify FILE`: check a receipt (or what `openlora infer --out` wrote) and name the
// check and field that failed.
import { readFile } from 'node:fs/promises'
import type { Hex } from '../../../crypto/hash.ts'
import { type ReceiptExpectations, verifyReceipt } from '../../../protocols/infer/receipt.ts'
import type { Command } from '../../cli/command.ts'
import { UsageError } from '../../cli/command.ts'

const MAX_FILE_BYTES = 4 * 1024 * 1024

function idList(v: unknown, name: string): number[] | undefined {
  if (v === undefined) return undefined
  if (!Array.isArray(v) || v.some((x) => !Number.isInteger(x) || x < 0))
    throw new UsageError(`${name} in the file must be an array of token ids`)
  return v as number[]
}

export const verifyCommand: Command = {
  name: 'verify',
  summary: 'verify a receipt file: schema, amounts, token hashes, peer and operator signatures',
  positionals: 'FILE',
  options: { json: { type: 'boolean', description: 'print the result as JSON' } },
  async run({ values, positionals }) {
    const file = positionals[0]
    if (!file || positionals.length > 1) throw new UsageError('give exactly one FILE')
    const text = await readFile(file, 'utf8').catch((err) => {
      throw new UsageError(`cannot read ${file}: ${(err as Error).message}`)
    })
    if (text.length > MAX_FILE_BYTES) throw new UsageError(`${file} is over ${MAX_FILE_BYTES} bytes`)
    let doc: Record<string, unknown>
    try {
      doc = JSON.parse(text)
    } catch {
      throw new UsageError(`${file} is not JSON`)
    }
    // Either a bare receipt or `{ receipt, promptIds, outputIds, servedBy, jobId, attributionProof? }`.
    const wrapped = doc != null && typeof doc === 'object' && 'receipt' in doc
    const receipt = wrapped ? doc.receipt : doc
    const expect: ReceiptExpectations = wrapped
      ? {
          promptIds: idList(doc.promptIds, 'promptIds'),
          outputIds: idList(doc.outputIds, 'outputIds'),
          ...(typeof doc.servedBy === 'string' ? { peerId: doc.servedBy } : {}),
          ...(typeof doc.jobId === 'string' ? { jobId: doc.jobId as Hex } : {}),
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
