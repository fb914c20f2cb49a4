// The Jazzer.js fuzz function of one target (OPENLORA_FUZZ_TARGET; scripts/fuzz/jazzer-run.ts
// imports this after Jazzer's instrumentation hooks are in place, so every src/ module the
// decoder loads reports coverage). A typed refusal is the decoder's job; anything else thrown
// (isCrash) is a finding, which Jazzer reports with the input and stops.
import { isCrash, TARGETS } from './targets.ts'

const name = process.env.OPENLORA_FUZZ_TARGET
const target = TARGETS.find((t) => t.name === name)
if (!target) throw new Error(`OPENLORA_FUZZ_TARGET: unknown target ${name}`)
const decode = target.decode

export function fuzz(data: Buffer): void {
  try {
    decode(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
  } catch (err) {
    if (isCrash(err)) throw err
  }
}
