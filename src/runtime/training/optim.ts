// The two optimizers `openlora train` offers, with PyTorch's exact update order so a run matches
// torch.optim step by step (the tests compare losses with PyTorch + PEFT goldens). Arithmetic is
// in float64 per element and stored back as float32, as close to torch's fp32 kernels as matters.

export interface Optimizer {
  /** the learning rate of the next step (the schedule sets it before each step) */
  lr: number
  /** Updates every tensor in place from its gradient. */
  step(params: Float32Array[], grads: Float32Array[]): void
  /** everything a checkpoint needs to continue bit for bit (AdamW's moments and step count) */
  saveState(): OptimizerState
  loadState(s: OptimizerState): void
}

export interface OptimizerState {
  t: number
  m: Float64Array[]
  v: Float64Array[]
}

/** torch.optim.SGD without momentum, dampening or weight decay: p −= lr · g. */
export function sgd(lr: number): Optimizer {
  return {
    lr,
    step(params, grads) {
      const lr = this.lr
      params.forEach((p, i) => {
        const g = grads[i]!
        for (let j = 0; j < p.length; j++) p[j] = p[j]! - lr * g[j]!
      })
    },
    saveState: () => ({ t: 0, m: [], v: [] }),
    loadState() {}
  }
}

export interface AdamWOptions {
  lr: number
  /** PyTorch's default 0.01 */
  weightDecay?: number
  beta1?: number
  beta2?: number
  eps?: number
}

/**
 * torch.optim.AdamW (amsgrad off): decoupled decay p ·= 1 − lr·wd first, then
 * m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², and
 * p −= (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + eps).
 */
export function adamw(o: AdamWOptions): Optimizer {
  const { weightDecay = 0.01, beta1 = 0.9, beta2 = 0.999, eps = 1e-8 } = o
  let m: Float64Array[] = []
  let v: Float64Array[] = []
  let t = 0
  return {
    lr: o.lr,
    saveState: () => ({ t, m, v }),
    loadState(s) {
      t = s.t
      m = s.m
      v = s.v
    },
    step(params, grads) {
      const lr = this.lr
      if (t === 0) {
        m = params.map((p) => new Float64Array(p.length))
        v = params.map((p) => new Float64Array(p.length))
      }
      t++
      const stepSize = lr / (1 - beta1 ** t)
      const bc2 = Math.sqrt(1 - beta2 ** t)
      params.forEach((p, i) => {
        const g = grads[i]!
        const mi = m[i]!
        const vi = v[i]!
        for (let j = 0; j < p.length; j++) {
          const gj = g[j]!
          mi[j] = beta1 * mi[j]! + (1 - beta1) * gj
          vi[j] = beta2 * vi[j]! + (1 - beta2) * gj * gj
          const decayed = p[j]! * (1 - lr * weightDecay)
          p[j] = decayed - (stepSize * mi[j]!) / (Math.sqrt(vi[j]!) / bc2 + eps)
        }
      })
    }
  }
}
