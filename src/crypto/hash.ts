import { createHash } from 'node:crypto'
import { keccak_256 } from '@noble/hashes/sha3.js'

export type Hex = `0x${string}`

/** SHA-256 of the bytes (OpenSSL, fast for model-sized inputs). */
export function sha256(data: Uint8Array | string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest())
}

/** Incremental SHA-256, for hashing multi-GB weight files without holding them. */
export function sha256Stream(): { update(d: Uint8Array): void; digest(): Uint8Array } {
  const h = createHash('sha256')
  return {
    update: (d) => void h.update(d),
    digest: () => new Uint8Array(h.digest())
  }
}

export function keccak256(data: Uint8Array): Uint8Array {
  return keccak_256(data)
}

export function toHex(bytes: Uint8Array): Hex {
  return `0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`
}

export function fromHex(hex: string): Uint8Array {
  const h = hex.startsWith('0x') ? hex.slice(2) : hex
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h))
    throw new TypeError(`not a hex string: ${hex.slice(0, 20)}`)
  return new Uint8Array(Buffer.from(h, 'hex'))
}

export function sha256Hex(data: Uint8Array | string): Hex {
  return toHex(sha256(data))
}

/** Hash of a token id sequence: sha256 over little-endian uint32s (receipts' input/output hash). */
export function hashTokenIds(ids: readonly number[]): Hex {
  const buf = new Uint8Array(ids.length * 4)
  const view = new DataView(buf.buffer)
  for (let i = 0; i < ids.length; i++) view.setUint32(i * 4, ids[i]!, true)
  return sha256Hex(buf)
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
