import type { Logger } from '../../common/log.ts'
import type { Hex } from '../../crypto/hash.ts'
import type { NodeMetrics } from '../../metrics/registry.ts'
import type { ServingBackend } from '../../serving/backend.ts'
import type { PeerDirectory } from '../routing/router.ts'
import type { PeerScores } from '../shared/peer-score.ts'
import type { ProtocolHost } from '../shared/protocol-host.ts'
import type { AdapterFetcher, AttributionProvider, PaymentGate } from './gates.ts'
import type { OperatorSigner, ReceiptDomain } from './receipt.ts'

export interface InferInit {
  /** wei per 1,000 tokens, decimal string */
  pricePer1kTokens?: string
  maxConcurrentJobsPerPeer?: number
  requestsPerSecondPerPeer?: number
  requestBurstPerPeer?: number
  maxConcurrentJobs?: number
  maxPromptTokens?: number
  maxHops?: number
  progressIntervalMs?: number
  /** EIP-712 domain of receipts; chainId 0 and the zero address without a chain */
  receiptDomain?: ReceiptDomain
}

/** The libp2p host's surface this service uses (a Libp2p node fits). */
export type InferHost = ProtocolHost

export interface InferComponents {
  host: InferHost
  peerId: string
  /** the libp2p private key: signs receipts */
  privateKey: { sign(data: Uint8Array): Uint8Array | Promise<Uint8Array> }
  /** the operator account (viem LocalAccount): signs receipts as EIP-712 */
  operator: OperatorSigner
  /** absent on a node that only relays */
  backend?: ServingBackend
  peers?: PeerDirectory
  adapterFetcher?: AdapterFetcher
  /**
   * peers holding an adapter according to the DHT's provider records: asked only when no advert
   * names a holder (an advert may not have reached this node)
   */
  adapterProviders?(cid: string, signal: AbortSignal): Promise<string[]>
  attribution?: AttributionProvider
  /**
   * the full proof the attribution provider kept for a job (undefined when it attributed by
   * provenance only); sent with the result so the client can check it against on-chain roots
   */
  attributionProof?: (jobId: Hex) => Promise<unknown>
  /** the chain layer, looked up per job (it may start after this service); absent = free jobs only */
  payments?: () => PaymentGate | undefined
  /** the node's registry: forwards and failovers (docs/METRICS.md) */
  metrics?: NodeMetrics
  logger?: Logger
  /** the node's peer scores (shared with the exchanges and the connection gater); a private table without */
  scores?: PeerScores
}
