// Length-prefixed framing on a libp2p 3 message stream, shared by every protocol (infer, adapter
// and datanet exchange): every read has a size limit, and so does the buffer behind it.
import type { Stream } from '@libp2p/interface'
import { type LengthPrefixedStream, lpStream } from '@libp2p/utils'

/**
 * The byte buffer is bounded too, so a peer cannot park megabytes behind a small length prefix;
 * a reader of bulk data (adapter files) passes a larger buffer so a fast sender is not reset.
 */
export function framed(
  stream: Stream,
  maxDataLength: number,
  maxBufferSize = maxDataLength + 16
): LengthPrefixedStream<Stream> {
  return lpStream(stream, { maxDataLength, maxBufferSize })
}
