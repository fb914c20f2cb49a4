// Step planning for continuous batching, kept free of I/O so its rules are unit-tested alone.
// Each step: every decoding sequence feeds its last sampled token (one row, one token); the
// remaining token budget goes, oldest request first, to prompt chunks of sequences still
// prefilling. A sequence joins the batch the step after its adapter is hot, so new requests
// enter between decode steps without waiting for the batch to drain.

export type JobPhase = 'queued' | 'loading' | 'prefill' | 'decode' | 'finished'

export interface PlannableJob {
  readonly id: number
  phase: JobPhase
  promptIds: number[]
  /** prompt tokens already in the KV cache */
  prefilled: number
  /** the token sampled last step, fed this step (decode phase) */
  nextToken: number
  seq: number
  slot: number
}

export interface StepRow {
  seq: number
  tokens: number[]
  slot: number
}

export interface StepPlan<J extends PlannableJob> {
  jobs: J[]
  rows: StepRow[]
  /** per row: true when the row's logits give the sequence's next token (decode, or the last
   * chunk of its prompt) */
  samples: boolean[]
  decodeRows: number
  prefillTokens: number
}

export function planStep<J extends PlannableJob>(
  running: readonly J[],
  limits: { prefillChunk: number; maxStepTokens: number }
): StepPlan<J> {
  const plan: StepPlan<J> = { jobs: [], rows: [], samples: [], decodeRows: 0, prefillTokens: 0 }
  let budget = limits.maxStepTokens
  for (const job of running) {
    if (job.phase !== 'decode') continue
    plan.jobs.push(job)
    plan.rows.push({ seq: job.seq, tokens: [job.nextToken], slot: job.slot })
    plan.samples.push(true)
    plan.decodeRows += 1
    budget -= 1
  }
  // `running` is in admission order, so the oldest prompt gets the budget first
  for (const job of running) {
    if (job.phase !== 'prefill' || budget <= 0) continue
    const left = job.promptIds.length - job.prefilled
    const n = Math.min(left, limits.prefillChunk, budget)
    plan.jobs.push(job)
    plan.rows.push({
      seq: job.seq,
      tokens: job.promptIds.slice(job.prefilled, job.prefilled + n),
      slot: job.slot
    })
    plan.samples.push(n === left)
    plan.prefillTokens += n
    budget -= n
  }
  return plan
}
