// Reverse-mode differentiation over the project's ONNX graph builder. onnxruntime-node has no
// training API, so the backward pass is more ONNX nodes in the same graph: each forward op
// records a closure that, run in reverse order, adds the nodes of its vector-Jacobian product.
// Shapes are static (one graph per batch shape): broadcast gradients reduce over known axes. Only
// values that depend on a trainable input get gradients (a frozen base: nothing for its weights).
import { DT, type GraphBuilder } from '../graph/proto.ts'

/** A frozen base weight [out, in]: an initializer's name, or a function adding the nodes that compute it */
export type FrozenWeight = string | ((after: string) => string)

export interface Val {
  name: string
  shape: number[]
  /** depends on a trainable input, so it needs a gradient */
  grad: boolean
}

const numel = (s: number[]): number => s.reduce((a, b) => a * b, 1)

export class Tape {
  private readonly backs: (() => void)[] = []
  private readonly grads = new Map<string, string>()
  private consts = 0

  readonly g: GraphBuilder
  /** the graph's default-domain opset (17; 21 for a quantized base's DequantizeLinear blocks) */
  readonly opset: number

  constructor(g: GraphBuilder, opset = 17) {
    this.g = g
    this.opset = opset
  }

  /** A value that needs no gradient (input ids, frozen weights, masks). */
  fixed(name: string, shape: number[]): Val {
    return { name, shape, grad: false }
  }

  /** A trainable graph input. */
  param(name: string, shape: number[]): Val {
    this.g.input(name, DT.FLOAT, shape)
    return { name, shape, grad: true }
  }

  constant(data: Float32Array, shape: number[]): Val {
    return this.fixed(this.g.weight(`c${this.consts++}`, data, shape), shape)
  }

  private shapeConst(shape: number[]): string {
    return this.g.int64(`s${this.consts++}`, shape)
  }

  private out(name: string, shape: number[], inputs: Val[], back: (g: string) => void): Val {
    const v = { name, shape, grad: inputs.some((i) => i.grad) }
    if (v.grad)
      this.backs.push(() => {
        const gv = this.grads.get(name)
        if (gv) back(gv)
      })
    return v
  }

  private acc(v: Val, g: string): void {
    if (!v.grad) return
    const prev = this.grads.get(v.name)
    this.grads.set(v.name, prev ? this.g.op('Add', [prev, g]) : g)
  }

  /** Sums a broadcast gradient of shape `from` back to shape `to` (numpy broadcasting rules). */
  private reduceTo(g: string, from: number[], to: number[]): string {
    if (from.length === to.length && from.every((d, i) => d === to[i])) return g
    const lead = from.length - to.length
    const axes: number[] = []
    for (let i = 0; i < from.length; i++) {
      const t = i < lead ? 1 : to[i - lead]!
      if (t === 1 && from[i] !== 1) axes.push(i)
    }
    let r = g
    if (axes.length > 0)
      r = this.g.op('ReduceSum', [g, this.g.int64(`a${this.consts++}`, axes)], { keepdims: 1 })
    return this.g.op('Reshape', [r, this.shapeConst(to)])
  }

  private broadcast(a: number[], b: number[]): number[] {
    const n = Math.max(a.length, b.length)
    return Array.from({ length: n }, (_, i) => {
      const x = a[i - (n - a.length)] ?? 1
      const y = b[i - (n - b.length)] ?? 1
      if (x !== y && x !== 1 && y !== 1) throw new Error(`cannot broadcast [${a}] with [${b}]`)
      return Math.max(x, y)
    })
  }

  add(a: Val, b: Val): Val {
    const shape = this.broadcast(a.shape, b.shape)
    return this.out(this.g.op('Add', [a.name, b.name]), shape, [a, b], (g) => {
      this.acc(a, this.reduceTo(g, shape, a.shape))
      this.acc(b, this.reduceTo(g, shape, b.shape))
    })
  }

  mul(a: Val, b: Val): Val {
    const shape = this.broadcast(a.shape, b.shape)
    return this.out(this.g.op('Mul', [a.name, b.name]), shape, [a, b], (g) => {
      if (a.grad) this.acc(a, this.reduceTo(this.g.op('Mul', [g, b.name]), shape, a.shape))
      if (b.grad) this.acc(b, this.reduceTo(this.g.op('Mul', [g, a.name]), shape, b.shape))
    })
  }

  scale(a: Val, c: number): Val {
    return this.mul(a, this.constant(new Float32Array([c]), []))
  }

  addScalar(a: Val, c: number): Val {
    return this.add(a, this.constant(new Float32Array([c]), []))
  }

  /** Batched matrix product with broadcasting over leading dims (ONNX MatMul, rank ≥ 2 both). */
  matmul(a: Val, b: Val): Val {
    const lead = this.broadcast(a.shape.slice(0, -2), b.shape.slice(0, -2))
    const shape = [...lead, a.shape.at(-2)!, b.shape.at(-1)!]
    return this.out(this.g.op('MatMul', [a.name, b.name]), shape, [a, b], (g) => {
      if (a.grad) {
        const ga = this.g.op('MatMul', [g, this.swapLast(b.name, b.shape.length)])
        this.acc(a, this.reduceTo(ga, [...lead, ...a.shape.slice(-2)], a.shape))
      }
      if (b.grad) {
        const gb = this.g.op('MatMul', [this.swapLast(a.name, a.shape.length), g])
        this.acc(b, this.reduceTo(gb, [...lead, ...b.shape.slice(-2)], b.shape))
      }
    })
  }

  /**
   * x · Wᵀ for a frozen base weight W [out, in] in its checkpoint layout (x 2-D [M, in]): the
   * seam every frozen base Linear goes through. W is one initializer read by both directions,
   * Gemm transB=1 forward and MatMul dx = dy · W backward, so no transposed copy of it exists in
   * the graph (a Transpose of a constant would be folded by ORT into a second full copy).
   */
  frozenLinear(x: Val, w: FrozenWeight, wShape: [number, number]): Val {
    const [out, inF] = wShape
    if (x.shape.length !== 2 || x.shape[1] !== inF) throw new Error(`linear [${x.shape}] · [${wShape}]ᵀ`)
    // a computed W (a quantized base's dequantization) is computed again for the backward, so it
    // does not live from the forward to the backward (given the operand it must wait for)
    const wOf = typeof w === 'string' ? () => w : w
    const y = this.g.op('Gemm', [x.name, wOf(x.name)], { transB: 1 })
    return this.out(y, [x.shape[0]!, out], [x], (g) => this.acc(x, this.g.op('MatMul', [g, wOf(g)])))
  }

  private swapLast(name: string, rank: number): string {
    const perm = Array.from({ length: rank }, (_, i) => i)
    ;[perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!]
    return this.g.op('Transpose', [name], { perm })
  }

  transpose(a: Val, perm: number[]): Val {
    const shape = perm.map((p) => a.shape[p]!)
    const inv = perm.map((_, i) => perm.indexOf(i))
    return this.out(this.g.op('Transpose', [a.name], { perm }), shape, [a], (g) =>
      this.acc(a, this.g.op('Transpose', [g], { perm: inv }))
    )
  }

  reshape(a: Val, shape: number[]): Val {
    if (numel(shape) !== numel(a.shape)) throw new Error(`reshape [${a.shape}] → [${shape}]`)
    return this.out(this.g.op('Reshape', [a.name, this.shapeConst(shape)]), shape, [a], (g) =>
      this.acc(a, this.g.op('Reshape', [g, this.shapeConst(a.shape)]))
    )
  }

  /**
   * Rows of a trainable table (an embedding lookup, ONNX Gather on axis 0). The VJP scatters each
   * row's gradient back onto its id with ScatterND's add reduction, so repeated ids accumulate.
   */
  gather(table: Val, ids: string, idsShape: number[]): Val {
    const shape = [...idsShape, ...table.shape.slice(1)]
    return this.out(this.g.op('Gather', [table.name, ids], { axis: 0 }), shape, [table], (g) => {
      const zeros = this.g.op('ConstantOfShape', [this.shapeConst(table.shape)])
      const index = this.g.op('Unsqueeze', [ids, this.g.int64(`a${this.consts++}`, [-1])])
      this.acc(table, this.g.op('ScatterND', [zeros, index, g], { reduction: 'add' }))
    })
  }

  /** Sum over the last axis, kept as size 1. */
  sumLast(a: Val): Val {
    const shape = [...a.shape.slice(0, -1), 1]
    const axes = this.g.int64(`a${this.consts++}`, [-1])
    return this.out(this.g.op('ReduceSum', [a.name, axes], { keepdims: 1 }), shape, [a], (g) =>
      this.acc(a, this.g.op('Expand', [g, this.shapeConst(a.shape)]))
    )
  }

  /** RMSNorm, frozen w [n]: one SimplifiedLayerNormalization (r = 1/rms); dx = r·gw − x·r³·Σ(gw·x)/n */
  rmsNorm(x: Val, w: string, eps: number): Val {
    const n = x.shape.at(-1)!
    const [y, r] = this.g.node('SimplifiedLayerNormalization', [x.name, w], 2, {
      axis: -1,
      epsilon: { float: eps }
    })
    return this.out(y!, x.shape, [x], (g) => {
      const gw = this.g.op('Mul', [g, w])
      const dot = this.g.op('ReduceSum', [
        this.g.op('Mul', [gw, x.name]),
        this.g.int64(`a${this.consts++}`, [-1])
      ])
      const coef = this.g.op('Mul', [
        this.g.op('Mul', [this.g.op('Mul', [r!, r!]), r!]),
        this.g.op('Mul', [dot, this.scalar(1 / n)])
      ])
      this.acc(x, this.g.op('Sub', [this.g.op('Mul', [gw, r!]), this.g.op('Mul', [x.name, coef])]))
    })
  }

  /** x^(-1/2); d/dx = -1/2 · y³. */
  rsqrt(a: Val): Val {
    const y = this.g.op('Reciprocal', [this.g.op('Sqrt', [a.name])])
    return this.out(y, a.shape, [a], (g) => {
      const y3 = this.g.op('Mul', [y, this.g.op('Mul', [y, y])])
      const half = this.g.weight(`c${this.consts++}`, new Float32Array([-0.5]), [])
      this.acc(a, this.g.op('Mul', [g, this.g.op('Mul', [y3, half])]))
    })
  }

  /** x·sigmoid(x); d/dx = s·(1 + x·(1 − s)). */
  silu(a: Val): Val {
    const s = this.g.op('Sigmoid', [a.name])
    return this.out(this.g.op('Mul', [a.name, s]), a.shape, [a], (g) => {
      const one = this.g.weight(`c${this.consts++}`, new Float32Array([1]), [])
      const oneMinus = this.g.op('Sub', [one, s])
      const inner = this.g.op('Add', [one, this.g.op('Mul', [a.name, oneMinus])])
      this.acc(a, this.g.op('Mul', [g, this.g.op('Mul', [s, inner])]))
    })
  }

  private scalar(c: number): string {
    return this.g.weight(`c${this.consts++}`, new Float32Array([c]), [])
  }

  /** tanh; d/dx = 1 − y² (Gemma 2's soft-capping). */
  tanh(a: Val): Val {
    const y = this.g.op('Tanh', [a.name])
    return this.out(y, a.shape, [a], (g) => {
      const d = this.g.op('Sub', [this.scalar(1), this.g.op('Mul', [y, y])])
      this.acc(a, this.g.op('Mul', [g, d]))
    })
  }

  /**
   * GELU with the tanh approximation, as PyTorch's gelu(approximate='tanh') (Gemma's
   * gelu_pytorch_tanh): 0.5·x·(1 + t), t = tanh(k·(x + c·x³)); written with plain ops because the
   * ONNX Gelu op needs opset 20. d/dx = 0.5·(1 + t) + 0.5·x·(1 − t²)·k·(1 + 3c·x²).
   */
  geluTanh(a: Val): Val {
    const [k, c] = [Math.sqrt(2 / Math.PI), 0.044715]
    const x = a.name
    const x2 = this.g.op('Mul', [x, x])
    const inner = this.g.op('Mul', [
      this.g.op('Mul', [x, this.g.op('Add', [this.scalar(1), this.g.op('Mul', [x2, this.scalar(c)])])]),
      this.scalar(k)
    ])
    const th = this.g.op('Tanh', [inner])
    const onePlus = this.g.op('Add', [this.scalar(1), th])
    const y = this.g.op('Mul', [this.g.op('Mul', [x, onePlus]), this.scalar(0.5)])
    return this.out(y, a.shape, [a], (g) => {
      const sech2 = this.g.op('Sub', [this.scalar(1), this.g.op('Mul', [th, th])])
      const dInner = this.g.op('Mul', [
        this.g.op('Add', [this.scalar(1), this.g.op('Mul', [x2, this.scalar(3 * c)])]),
        this.scalar(k)
      ])
      const d = this.g.op('Mul', [
        this.g.op('Add', [onePlus, this.g.op('Mul', [x, this.g.op('Mul', [sech2, dInner])])]),
        this.scalar(0.5)
      ])
      this.acc(a, this.g.op('Mul', [g, d]))
    })
  }

  /** Exact GELU 0.5·x·(1 + erf(x/√2)); d/dx = Φ(x) + x·φ(x). */
  gelu(a: Val): Val {
    const x = a.name
    const erf = this.g.op('Erf', [this.g.op('Mul', [x, this.scalar(Math.SQRT1_2)])])
    const cdf = this.g.op('Mul', [this.g.op('Add', [this.scalar(1), erf]), this.scalar(0.5)])
    return this.out(this.g.op('Mul', [x, cdf]), a.shape, [a], (g) => {
      const pdf = this.g.op('Mul', [
        this.g.op('Exp', [this.g.op('Mul', [this.g.op('Mul', [x, x]), this.scalar(-0.5)])]),
        this.scalar(1 / Math.sqrt(2 * Math.PI))
      ])
      this.acc(a, this.g.op('Mul', [g, this.g.op('Add', [cdf, this.g.op('Mul', [x, pdf])])]))
    })
  }

  /** `len` features from `start` of the last axis (one part of a fused projection); the VJP pads with zeros. */
  sliceLast(a: Val, start: number, len: number): Val {
    const n = a.shape.at(-1)!
    if (start < 0 || start + len > n) throw new Error(`slice [${start}, ${start + len}) of ${n}`)
    const shape = [...a.shape.slice(0, -1), len]
    const y = this.g.op('Slice', [
      a.name,
      this.g.int64(`a${this.consts++}`, [start]),
      this.g.int64(`a${this.consts++}`, [start + len]),
      this.g.int64(`a${this.consts++}`, [-1])
    ])
    return this.out(y, shape, [a], (g) => {
      const r = a.shape.length
      const pads = new Array<number>(2 * r).fill(0)
      pads[r - 1] = start
      pads[2 * r - 1] = n - start - len
      this.acc(a, this.g.op('Pad', [g, this.g.int64(`a${this.consts++}`, pads)]))
    })
  }

  /** `a` [N, …] cut into row blocks of `sizes` (Split); the VJP concatenates their gradients. */
  splitRows(a: Val, sizes: number[]): Val[] {
    if (sizes.reduce((x, y) => x + y, 0) !== a.shape[0])
      throw new Error(`split ${a.shape[0]} rows as [${sizes}]`)
    if (sizes.length === 1) return [a]
    const names = this.g.node('Split', [a.name, this.g.int64(`a${this.consts++}`, sizes)], sizes.length, {
      axis: 0
    })
    const parts = names.map((name, i) => ({ name, shape: [sizes[i]!, ...a.shape.slice(1)], grad: a.grad }))
    if (a.grad)
      this.backs.push(() => {
        const gs = parts.map(
          (p) => this.grads.get(p.name) ?? this.g.op('ConstantOfShape', [this.shapeConst(p.shape)])
        )
        if (parts.some((p) => this.grads.has(p.name))) this.acc(a, this.g.op('Concat', gs, { axis: 0 }))
      })
    return parts
  }

  /** Rows of `a` reordered (out[i] = a[perm[i]], perm a permutation); the VJP applies the inverse. */
  permuteRows(a: Val, perm: number[]): Val {
    const inv = new Array<number>(perm.length)
    for (const [i, p] of perm.entries()) inv[p] = i
    const idx = this.g.int64(`a${this.consts++}`, perm)
    return this.out(this.g.op('Gather', [a.name, idx], { axis: 0 }), a.shape, [a], (g) =>
      this.acc(a, this.g.op('Gather', [g, this.g.int64(`a${this.consts++}`, inv)], { axis: 0 }))
    )
  }

  /** Softmax over the last axis; the VJP is y·(g − Σ g·y). */
  softmax(a: Val): Val {
    const y = this.g.op('Softmax', [a.name], { axis: -1 })
    return this.out(y, a.shape, [a], (g) => {
      const axes = this.g.int64(`a${this.consts++}`, [-1])
      const dot = this.g.op('ReduceSum', [this.g.op('Mul', [g, y]), axes], { keepdims: 1 })
      this.acc(a, this.g.op('Mul', [y, this.g.op('Sub', [g, dot])]))
    })
  }

  /**
   * Σ_n w[n] · (logsumexp(logits[n]) − logits[n, t[n]]): token cross-entropy, weighted per
   * position. Its gradient w[n] · (softmax(logits[n]) − onehot(t[n])) reuses the forward's
   * exp(logits − max) and subtracts w[n] at the target with ScatterElements' add (no one-hot).
   */
  crossEntropy(logits: Val, targets: string, weights: string): Val {
    const [N] = logits.shape as [number, number]
    const axes = this.g.int64(`a${this.consts++}`, [-1])
    // ReduceMax takes its axes as an input from opset 18
    const m =
      this.opset >= 18
        ? this.g.op('ReduceMax', [logits.name, axes], { keepdims: 1 })
        : this.g.op('ReduceMax', [logits.name], { axes: [-1], keepdims: 1 })
    const shifted = this.g.op('Sub', [logits.name, m])
    const e = this.g.op('Exp', [shifted])
    const sum = this.g.op('ReduceSum', [e, axes], { keepdims: 1 })
    const t2 = this.g.op('Unsqueeze', [targets, this.g.int64(`a${this.consts++}`, [1])])
    const picked = this.g.op('GatherElements', [shifted, t2], { axis: 1 })
    const nll = this.g.op('Reshape', [
      this.g.op('Sub', [this.g.op('Log', [sum]), picked]),
      this.shapeConst([N])
    ])
    const all = this.g.int64(`a${this.consts++}`, [0])
    const loss = this.g.op('ReduceSum', [this.g.op('Mul', [nll, weights]), all], { keepdims: 0 })
    return this.out(loss, [], [logits], (g) => {
      // w[n]·g / Σ exp, one scalar per row, then one pass over [N, V]
      const wg = this.g.op('Mul', [
        this.g.op('Unsqueeze', [weights, this.g.int64(`a${this.consts++}`, [1])]),
        g
      ])
      const p = this.g.op('Mul', [e, this.g.op('Div', [wg, sum])])
      const d = this.g.op('ScatterElements', [p, t2, this.g.op('Neg', [wg])], { axis: 1, reduction: 'add' })
      this.acc(logits, d)
    })
  }

  /** Seeds d loss / d loss = 1 and runs every recorded VJP in reverse. */
  backward(loss: Val): void {
    this.grads.set(loss.name, this.g.weight(`c${this.consts++}`, new Float32Array([1]), []))
    for (let i = this.backs.length - 1; i >= 0; i--) this.backs[i]!()
  }

  /** The accumulated gradient of a trainable value (after backward). */
  gradOf(v: Val): string {
    const g = this.grads.get(v.name)
    if (!g) throw new Error(`no gradient reaches ${v.name}`)
    return g
  }
}
