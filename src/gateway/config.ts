// The `gateway` config section: where the OpenAI-compatible HTTP API listens, its limits, and
// how it pays for jobs routed to other nodes. Every key is also a --set gateway.KEY / env
// OPENLORA_GATEWAY__KEY (docs/GATEWAY.md).
import { z } from '../common/schema.ts'

const wei = z.string().regex(/^[0-9]{1,78}$/, 'wei as a decimal string')

export const GatewayConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** loopback by default; any other address needs API keys (refused at start otherwise) */
  host: z
    .string()
    .regex(/^[0-9A-Za-z.:[\]-]{1,64}$/)
    .default('127.0.0.1')
    .describe('an IP address or host name to bind'),
  /** 0 = a free port (tests); the start line and `npm start` print the real one */
  port: z.int().min(0).max(65535).default(8000),
  /** completion requests (streamed or not) running at once; beyond it 503 with Retry-After */
  maxConcurrentStreams: z.int().min(1).max(100_000).default(64),
  /** max_tokens when a request gives none */
  defaultMaxTokens: z.int().min(1).max(4096).default(256),
  /** a request's headers and body must arrive within this (slow clients get 408) */
  requestTimeoutMs: z.int().min(1000).max(600_000).default(30_000),
  /** a connection with no bytes either way for this long is closed (SSE sends keep-alives) */
  idleTimeoutMs: z.int().min(1000).max(3_600_000).default(60_000),
  /** the dashboard at /ui on this port (same keys as the API) */
  dashboard: z.boolean().default(true),
  /** require an API key (`openlora gateway keys add`) even on loopback */
  apiKeys: z.boolean().default(false),
  /** client key file that pays jobs routed to nodes that charge; '' = only free jobs */
  payer: z.string().max(4096).default('').describe("a client key file, or '' for free jobs only"),
  /** the most the payer commits to escrow in total, wei; deposits are made on demand up to it */
  maxSpend: wei.default('0'),
  /** the most the payer pays per 1k tokens, wei; '' = no cap */
  maxPricePer1kTokens: z
    .string()
    .regex(/^[0-9]{0,78}$/)
    .default('')
    .describe("wei as a decimal string, or '' for no cap")
})
export type GatewayConfig = z.output<typeof GatewayConfigSchema>
export const GATEWAY_CONFIG_DEFAULTS: GatewayConfig = GatewayConfigSchema.parse({})

/** Loopback binds may run without keys; anything else is reachable by others. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host)
}
