// The one canonical encoding for everything we sign or hash that is not EIP-712: deterministic
// CBOR (RFC 8949 §4.2.1: shortest forms, map keys sorted by their encoded bytes). Decoding is
// strict: no undefined, no duplicate map keys, no indefinite lengths.
import { decode as cborDecode, encode as cborEncode, rfc8949EncodeOptions } from 'cborg'

export function encodeCanonical(value: unknown): Uint8Array {
  return cborEncode(value, rfc8949EncodeOptions)
}

export function decodeCanonical<T = unknown>(bytes: Uint8Array): T {
  return cborDecode(bytes, {
    strict: true,
    allowUndefined: false,
    allowIndefinite: false,
    rejectDuplicateMapKeys: true,
    useMaps: false
  }) as T
}
