// Pays for training jobs (/openlora/train, docs/TRAINING.md) with the same JobPayer and wallet as
// inference: a training job is a payer job with no prompt whose worst case is its budget of
// trained tokens at the trainer's signed price, on the (client, node, adapterId 0) channel, so a
// voucher covers what earlier jobs on that channel owe, and the terms' operator signature, the
// price cap and the budget bound are checked before anything is signed (H4).
import type { AcceptedTerms, PaymentTerms } from '../protocols/infer/terms.ts'
import type { TrainingPayer } from '../protocols/training/request.ts'
import type { JobPayer } from './payer.ts'

export function trainingPayer(payer: JobPayer): TrainingPayer {
  // the key of the payer's terms cache: apart from inference jobs on the same model
  const job = (model: string, maxTokens: number) => ({
    model: `train:${model}`,
    adapter: null,
    promptIds: [],
    params: { maxNewTokens: maxTokens }
  })
  return {
    async voucherForTerms(peer, j, terms: PaymentTerms, jobId) {
      const voucher = await payer.voucherForTerms(peer, job(j.model, j.maxTokens), terms, jobId)
      return { voucher, terms: payer.termsOf(voucher) as AcceptedTerms }
    },
    hashOf: (voucher) => payer.hashOf(voucher),
    statementMismatch: (voucher, s) => payer.statementMismatch(voucher, s),
    ended: (voucher, outcome) => payer.ended(voucher, outcome)
  }
}
