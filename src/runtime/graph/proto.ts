// A small builder over onnx-proto's ModelProto. Large weights go to an external data file (the
// protobuf form caps at 2 GiB and encoding 500 MB of raw_data in protobufjs doubles peak RAM), so
// a built model is `model.onnx` (graph only, small) plus `weights.bin` (tensors, 64-byte aligned).
// With a data path given, each weight is written to that file as it is added, so a build never
// holds more than the tensor in hand (multi-GB checkpoints build in bounded memory).
import { closeSync, openSync, writeSync } from 'node:fs'
import onnxProto from 'onnx-proto'

const { onnx } = onnxProto

export const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BFLOAT16: 16, UINT4: 21 } as const
export type DataType = (typeof DT)[keyof typeof DT]

/** A graph dimension: a number, or a symbolic name such as 'batch'. */
export type Dim = number | string

export type AttrValue = number | string | number[] | { float: number } | { floats: number[] }

/**
 * Where one initializer's bytes are: in the external data file (offset/bytes) or inline in the
 * graph (its raw bytes). model/manifest.ts writes these next to weights.bin so a reader other than
 * ONNX Runtime (the native decoder, runtime/native/) finds each tensor without parsing the graph.
 */
export type Placement =
  | { name: string; type: DataType; dims: number[]; offset: number; bytes: number }
  | { name: string; type: DataType; dims: number[]; raw: Uint8Array }

// Tensors smaller than this stay inline in the graph; larger ones go to the external file.
const EXTERNAL_MIN_BYTES = 1024
const ALIGN = 64

export class GraphBuilder {
  readonly nodes: onnxProto.onnx.INodeProto[] = []
  readonly inputs: onnxProto.onnx.IValueInfoProto[] = []
  readonly outputs: onnxProto.onnx.IValueInfoProto[] = []
  readonly initializers: onnxProto.onnx.ITensorProto[] = []
  private readonly external: { data: Uint8Array; offset: number }[] = []
  /** every initializer, in the order added (tensors.json) */
  readonly placements: Placement[] = []
  private externalBytes = 0
  private counter = 0
  private readonly dataFile: string
  private fd: number | undefined

  /**
   * @param dataFile the external data file name the graph refers to (next to model.onnx)
   * @param dataPath where to stream that file while building; without it, writeExternalData writes it
   */
  constructor(dataFile = 'weights.bin', dataPath?: string) {
    this.dataFile = dataFile
    if (dataPath) this.fd = openSync(dataPath, 'w')
  }

  /** A fresh intermediate value name. */
  tmp(hint: string): string {
    return `${hint}_${this.counter++}`
  }

  input(name: string, type: DataType, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, type, dims))
    return name
  }

  output(name: string, type: DataType, dims: Dim[]): string {
    this.outputs.push(valueInfo(name, type, dims))
    return name
  }

  /** A float32 initializer; big ones are placed in the external data file. */
  weight(name: string, data: Float32Array, dims: number[]): string {
    return this.tensor(name, DT.FLOAT, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), dims)
  }

  /** A uint8 initializer (e.g. block-quantized weights), or packed uint4 codes with DT.UINT4. */
  bytes(
    name: string,
    data: Uint8Array,
    dims: number[],
    type: typeof DT.UINT8 | typeof DT.UINT4 = DT.UINT8
  ): string {
    return this.tensor(name, type, data, dims)
  }

  /** An int8 initializer (two's complement bytes), e.g. s8 GEMM weights. */
  int8(name: string, data: Uint8Array, dims: number[]): string {
    return this.tensor(name, DT.INT8, data, dims)
  }

  int64(name: string, values: number[], dims: number[] = [values.length]): string {
    const a = new BigInt64Array(values.map((v) => BigInt(v)))
    return this.tensor(name, DT.INT64, new Uint8Array(a.buffer), dims)
  }

  private tensor(name: string, dataType: DataType, bytes: Uint8Array, dims: number[]): string {
    if (bytes.byteLength < EXTERNAL_MIN_BYTES) {
      const raw = bytes.slice()
      this.initializers.push({ name, dataType, dims, rawData: raw })
      this.placements.push({ name, type: dataType, dims, raw })
      return name
    }
    const offset = Math.ceil(this.externalBytes / ALIGN) * ALIGN
    if (this.fd !== undefined) {
      if (offset > this.externalBytes) writeSync(this.fd, new Uint8Array(offset - this.externalBytes))
      writeSync(this.fd, bytes)
    } else this.external.push({ data: bytes, offset })
    this.externalBytes = offset + bytes.byteLength
    this.placements.push({ name, type: dataType, dims, offset, bytes: bytes.byteLength })
    this.initializers.push({
      name,
      dataType,
      dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: this.dataFile },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(bytes.byteLength) }
      ]
    })
    return name
  }

  /** Adds a node; returns its output names (generated when a count is given). */
  node(
    op: string,
    inputs: string[],
    outputs: string[] | number = 1,
    attrs: Record<string, AttrValue> = {},
    domain = ''
  ): string[] {
    const outs =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, () => this.tmp(op.toLowerCase()))
        : outputs
    this.nodes.push({
      opType: op,
      domain,
      input: inputs,
      output: outs,
      name: this.tmp(`n_${op}`),
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v))
    })
    return outs
  }

  /** Shorthand for single-output nodes. */
  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, domain = ''): string {
    return this.node(op, inputs, 1, attrs, domain)[0]!
  }

  /** Encodes the graph (without the external data). */
  encodeModel(opsets: Record<string, number>): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'openlora',
      opsetImport: Object.entries(opsets).map(([domain, version]) => ({ domain, version })),
      graph: {
        name: 'openlora',
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers
      }
    })
    return onnx.ModelProto.encode(model).finish()
  }

  /** Closes the streamed data file; returns its size. */
  finishExternalData(): number {
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
    return this.externalBytes
  }

  /** Writes the external data file that the encoded graph points at (when not streamed). */
  writeExternalData(path: string): number {
    const fd = openSync(path, 'w')
    try {
      let at = 0
      const pad = new Uint8Array(ALIGN)
      for (const { data, offset } of this.external) {
        if (offset > at) writeSync(fd, pad, 0, offset - at)
        writeSync(fd, data)
        at = offset + data.byteLength
      }
    } finally {
      closeSync(fd)
    }
    return this.externalBytes
  }
}

function valueInfo(name: string, elemType: DataType, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) }
      }
    }
  }
}

function attribute(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType
  if (typeof v === 'number') return { name, type: T.INT, i: v }
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) }
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v }
  if ('float' in v) return { name, type: T.FLOAT, f: v.float }
  return { name, type: T.FLOATS, floats: v.floats }
}
