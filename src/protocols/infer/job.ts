// One job as the handler runs it, shared by local serving and forwarding.
import type { RequestFrame, ResponseFrame } from './codec.ts'

export interface Job {
  frame: RequestFrame
  remote: string
  signal: AbortSignal
  /** `raw`: the frame's encoding as already checked (a relay forwards it as is) */
  send(frame: ResponseFrame, raw?: Uint8Array): Promise<void>
  /** true once a token frame went to the client: from then on no failover */
  streamed: boolean
}
