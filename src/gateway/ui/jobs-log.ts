// One finished job as the dashboard's Jobs page lists it: from the result frame this node sent
// (served here or forwarded), with the full receipt so the page can have it verified.
import type { FinishedJob } from '../../protocols/infer/infer.ts'
import type { Receipt } from '../../protocols/infer/receipt.ts'

export interface JobRecord {
  jobId: string
  at: number
  /** served: this node ran it; forwarded: another node did, this one relayed it */
  role: 'served' | 'forwarded'
  /** 'gateway' for jobs this node's own gateway sent, else the client's peer id */
  client: string
  servedBy: string
  model: string
  adapter: string | null
  promptTokens: number
  outputTokens: number
  ttftMs: number
  totalMs: number
  finishReason: string
  /** wei the receipt asks for; '0' for a free job (no voucher) */
  paid: string
  attribution: { method: string; datanets: number; contributors: number }
  receipt: Receipt
  /** what the offline check compares the receipt with */
  expect: { jobId: string; promptIds: number[] }
}

export function jobRecord(e: FinishedJob, self: string): JobRecord {
  const { result, client } = e
  const b = result.receipt.body
  return {
    jobId: result.jobId,
    at: e.at,
    role: b.peerId === self ? 'served' : 'forwarded',
    client: client === self ? 'gateway' : client,
    servedBy: b.peerId,
    model: b.modelId,
    adapter: b.adapter,
    promptTokens: result.usage.promptTokens,
    outputTokens: result.usage.outputTokens,
    ttftMs: result.timings.firstTokenMs,
    totalMs: result.timings.totalMs,
    finishReason: result.finishReason,
    paid: b.voucher === null ? '0' : b.amountDue,
    attribution: {
      method: b.attribution.method,
      datanets: b.attribution.datanets.length,
      contributors: b.attribution.contributors.length
    },
    receipt: result.receipt,
    expect: { jobId: result.jobId, promptIds: result.promptIds }
  }
}
