// The `gateway` config section: where the OpenAI-compatible HTTP API listens, its limits, and
// how it pays for jobs routed to other nodes. Every key is also a --set gateway.KEY / env
// OPENLORA_GATEWAY__KEY (docs/GATEWAY.md).
import type { Spec } from '../common/config-spec.ts'

export interface GatewayConfig {
  enabled: boolean
  /** loopback by default; any other address needs API keys (refused at start otherwise) */
  host: string
  /** 0 = a free port (tests); the start line and `npm start` print the real one */
  port: number
  /** streams (and non-streamed jobs) running at once; beyond it 503 with Retry-After */
  maxConcurrentStreams: number
  /** max_tokens when a request gives none */
  defaultMaxTokens: number
  /** a request's headers and body must arrive within this (slow clients get 408) */
  requestTimeoutMs: number
  /** a connection with no bytes either way for this long is closed (SSE sends keep-alives) */
  idleTimeoutMs: number
  /** require an API key (`openlora gateway keys add`) even on loopback */
  apiKeys: boolean
  /** client key file that pays jobs routed to nodes that charge; '' = only free jobs */
  payer: string
  /** the most the payer spends in total, wei (decimal); deposits are made on demand up to it */
  maxSpend: string
  /** the most the payer pays per 1k tokens, wei; '' = no cap */
  maxPricePer1kTokens: string
}

export const GATEWAY_CONFIG_DEFAULTS: GatewayConfig = {
  enabled: true,
  host: '127.0.0.1',
  port: 8000,
  maxConcurrentStreams: 64,
  defaultMaxTokens: 256,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  apiKeys: false,
  payer: '',
  maxSpend: '0',
  maxPricePer1kTokens: ''
}

const int = (min: number, max: number): Spec => ({ type: 'int', min, max })

export const GATEWAY_CONFIG_SPEC: Spec = {
  type: 'section',
  fields: {
    enabled: { type: 'bool' },
    host: { type: 'string', pattern: /^[0-9A-Za-z.:[\]-]{1,64}$/, hint: 'an IP address or host name' },
    port: int(0, 65535),
    maxConcurrentStreams: int(1, 100_000),
    defaultMaxTokens: int(1, 4096),
    requestTimeoutMs: int(1000, 600_000),
    idleTimeoutMs: int(1000, 3_600_000),
    apiKeys: { type: 'bool' },
    payer: { type: 'string', hint: "a client key file, or '' for free jobs only" },
    maxSpend: { type: 'string', pattern: /^[0-9]{1,78}$/, hint: 'wei as a decimal string' },
    maxPricePer1kTokens: { type: 'string', pattern: /^[0-9]{0,78}$/, hint: "wei as a decimal string, or ''" }
  }
}

/** Loopback binds may run without keys; anything else is reachable by others. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host)
}
