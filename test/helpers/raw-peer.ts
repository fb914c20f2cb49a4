// A node that answers one protocol with a hand-written handler and runs nothing else of ours: the
// adversary of the hostile-peer tests (it says whatever the test wants, in any framing).
import type { Stream } from '@libp2p/interface'
import type { NodeOverrides } from '../../src/node/node.ts'

export function rawProtocolOverrides(
  protocol: string,
  handler: (stream: Stream) => Promise<void>
): NodeOverrides {
  return {
    extensions: [],
    services: { raw: (c) => ({ start: () => c.libp2p.handle(protocol, handler) }) }
  }
}
