// Small, strict schema checks for decoded CBOR values. Every check names the field path, so a
// BAD_REQUEST or a receipt verification failure says exactly which field was wrong and what is
// allowed. Unknown keys are refused: everything here is signed or size-bounded.

export class SchemaError extends Error {
  readonly field: string
  constructor(field: string, message: string) {
    super(`${field}: ${message}`)
    this.name = 'SchemaError'
    this.field = field
  }
}

export type Obj = Record<string, unknown>

export function obj(v: unknown, field: string, allowed: readonly string[]): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array)
    throw new SchemaError(field, 'must be a map')
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k))
      throw new SchemaError(`${field}.${k}`, `unknown field; allowed: ${allowed.join(', ')}`)
  }
  return v as Obj
}

export function str(v: unknown, field: string, max: number, min = 0): string {
  if (typeof v !== 'string') throw new SchemaError(field, 'must be a string')
  if (v.length < min || v.length > max) throw new SchemaError(field, `length must be ${min}..${max}`)
  return v
}

export function optStr(v: unknown, field: string, max: number): string | null {
  return v === null || v === undefined ? null : str(v, field, max)
}

export function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new SchemaError(field, `must be an integer in ${min}..${max}`)
  return v
}

export function num(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
    throw new SchemaError(field, `must be a number in ${min}..${max}`)
  return v
}

export function oneOf<T extends string>(v: unknown, field: string, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v))
    throw new SchemaError(field, `must be one of ${allowed.join(', ')}`)
  return v as T
}

export function arr(v: unknown, field: string, max: number, min = 0): unknown[] {
  if (!Array.isArray(v)) throw new SchemaError(field, 'must be an array')
  if (v.length < min || v.length > max) throw new SchemaError(field, `must hold ${min}..${max} items`)
  return v
}

export function uint32s(v: unknown, field: string, max: number, min = 0): number[] {
  const a = arr(v, field, max, min)
  for (let i = 0; i < a.length; i++) {
    const x = a[i]
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 0xffffffff)
      throw new SchemaError(`${field}[${i}]`, 'must be a uint32')
  }
  return a as number[]
}

export function hex(v: unknown, field: string, bytes: number): `0x${string}` {
  if (typeof v !== 'string' || v.length !== 2 + 2 * bytes || !/^0x[0-9a-f]*$/.test(v))
    throw new SchemaError(field, `must be 0x-prefixed lowercase hex of ${bytes} bytes`)
  return v as `0x${string}`
}

export function bytes(v: unknown, field: string, max: number, min = 0): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new SchemaError(field, 'must be a byte string')
  if (v.length < min || v.length > max) throw new SchemaError(field, `must be ${min}..${max} bytes`)
  return v
}

/** A non-negative integer as a decimal string (wei amounts, uint256 on chain). */
export function decimal(v: unknown, field: string): string {
  if (typeof v !== 'string' || !/^(0|[1-9][0-9]{0,77})$/.test(v))
    throw new SchemaError(field, 'must be a decimal integer string without leading zeros (≤ 78 digits)')
  return v
}

export function address(v: unknown, field: string): `0x${string}` {
  if (typeof v !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(v))
    throw new SchemaError(field, 'must be a 0x-prefixed 20-byte Ethereum address')
  return v as `0x${string}`
}
