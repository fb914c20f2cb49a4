// How a run's sequences become the batch of each step, as PEFT/TRL users expect from
// SFTConfig: a held-out eval split (`--eval-fraction`), truncation to `--seq-len` or packing into
// `--seq-len` chunks (`--packing`, TRL's packing: examples concatenated then cut, so attention
// crosses example boundaries), and `--batch` sequences per step in a seeded order reshuffled
// every epoch. Every choice is a pure function of (sequences, options, seed, step), which is
// what lets `--resume` continue a run bit for bit without storing the order.
import { rngFor } from '../fixtures/rng.ts'
import { type Sequence, TrainingInputError } from './trainer.ts'

export interface PlanOptions {
  /** sequences per step; undefined: every training sequence, in the given order, every step */
  batch?: number
  /** truncate (or with packing, chunk) to this many tokens */
  seqLen?: number
  packing?: boolean
  /** fraction of the sequences held out for the eval loss, in [0, 1) */
  evalFraction?: number
  seed: number
}

interface Row {
  ids: number[]
  trained: boolean[]
}

export interface DataPlan {
  train: Row[]
  eval: Row[]
  /** graph shape: rows per step and tokens per row */
  B: number
  T: number
  batchOf(step: number): Row[]
}

const rowOf = (s: Sequence): Row =>
  Array.isArray(s) ? { ids: s, trained: s.map((_, t) => t > 0) } : { ids: s.ids, trained: s.trained }

/** Fisher–Yates with the seeded stream of `label`. */
function shuffled<T>(xs: T[], seed: number, label: string): T[] {
  const out = xs.slice()
  const rng = rngFor(seed, label)
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

/** A row predicts something when some token after its first is trained. */
const predicts = (r: Row) => r.trained.some((x, t) => x && t > 0)

function fit(rows: Row[], seqLen: number | undefined, packing: boolean): Row[] {
  if (seqLen === undefined) return rows
  if (!packing) return rows.map((r) => ({ ids: r.ids.slice(0, seqLen), trained: r.trained.slice(0, seqLen) }))
  const ids = rows.flatMap((r) => r.ids)
  const trained = rows.flatMap((r) => r.trained)
  const out: Row[] = []
  for (let i = 0; i < ids.length; i += seqLen)
    out.push({ ids: ids.slice(i, i + seqLen), trained: trained.slice(i, i + seqLen) })
  return out
}

export function planData(seqs: Sequence[], o: PlanOptions): DataPlan {
  if (!Array.isArray(seqs) || seqs.length === 0)
    throw new TrainingInputError('tokens: expected a non-empty JSON array of token-id arrays')
  const rows = seqs.map(rowOf)
  const f = o.evalFraction ?? 0
  if (!(f >= 0 && f < 1)) throw new TrainingInputError(`eval fraction ${f}: allowed [0, 1)`)
  let trainRows = rows
  let evalRows: Row[] = []
  if (f > 0) {
    const nEval = Math.ceil(f * rows.length)
    if (rows.length - nEval < 1)
      throw new TrainingInputError(
        `eval fraction ${f} of ${rows.length} sequences leaves none to train on; give more data or a smaller fraction`
      )
    // the held-out set is a seeded choice; both sets keep the data's order
    const held = new Set(shuffled([...rows.keys()], o.seed, 'eval-split').slice(0, nEval))
    trainRows = rows.filter((_, i) => !held.has(i))
    evalRows = rows.filter((_, i) => held.has(i))
  }
  const train = fit(trainRows, o.seqLen, o.packing === true).filter(predicts)
  const ev = fit(evalRows, o.seqLen, o.packing === true).filter(predicts)
  if (train.length === 0)
    throw new TrainingInputError(
      'no training sequence has a trained token after its first, so nothing is predicted'
    )
  if (f > 0 && ev.length === 0)
    throw new TrainingInputError(
      'the held-out sequences predict no token; give more data or a larger --seq-len'
    )
  if (o.batch !== undefined && (!Number.isInteger(o.batch) || o.batch < 1))
    throw new TrainingInputError(`batch ${o.batch}: an integer ≥ 1`)
  const B = Math.min(o.batch ?? train.length, train.length)
  const T = o.seqLen ?? Math.max(...[...train, ...ev].map((r) => r.ids.length))
  const perEpoch = Math.ceil(train.length / B)
  const epochs = new Map<number, Row[]>()
  return {
    train,
    eval: ev,
    B,
    T,
    batchOf(step) {
      if (o.batch === undefined) return train
      const epoch = Math.floor(step / perEpoch)
      let order = epochs.get(epoch)
      if (!order) {
        epochs.clear()
        order = shuffled(train, o.seed, `epoch:${epoch}`)
        epochs.set(epoch, order)
      }
      const k = step % perEpoch
      return order.slice(k * B, (k + 1) * B)
    }
  }
}
