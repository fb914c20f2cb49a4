// Reading and writing infer frames on a libp2p 3 message stream (framing: ../shared/framed.ts):
// every read has a size limit and a signal, every frame is decoded and schema-checked before
// anyone sees it.
import type { Stream } from '@libp2p/interface'
import type { LengthPrefixedStream } from '@libp2p/utils'
import { decodeResponseFrame, encodeFrame, type RequestFrame, type ResponseFrame } from './codec.ts'
import { MAX_RESPONSE_FRAME_BYTES } from './constants.ts'
import { ProtocolError } from './errors.ts'

export async function writeFrame(
  lp: LengthPrefixedStream<Stream>,
  frame: RequestFrame | ResponseFrame,
  signal?: AbortSignal
): Promise<void> {
  await lp.write(encodeFrame(frame), { signal })
}

/**
 * Reads response frames until a `result` or `error` frame; throws ProtocolError on bad bytes.
 * Each frame comes with its bytes, so a relay forwards what it checked without re-encoding.
 */
export async function* readResponses(
  lp: LengthPrefixedStream<Stream>,
  signal: AbortSignal
): AsyncGenerator<{ frame: ResponseFrame; data: Uint8Array }> {
  while (true) {
    let data: Uint8Array
    try {
      data = (await lp.read({ signal })).subarray()
    } catch (err) {
      if (signal.aborted) throw err
      const e = err as Error
      throw new ProtocolError(
        `response stream failed: ${e.name}: ${e.message} (frames are limited to ${MAX_RESPONSE_FRAME_BYTES} bytes)`,
        {},
        { cause: err }
      )
    }
    const frame = decodeResponseFrame(data)
    yield { frame, data }
    if (frame.t === 'result' || frame.t === 'error') return
  }
}
