// Request and response bodies of the OpenAI-compatible routes, in zod 4: fastify validates bodies
// with them (fastify-type-provider-zod), the OpenAPI document is generated from them, and the
// handlers get their types. Limits follow the infer protocol's (docs/PROTOCOL.md "Limits"), so a
// request the gateway takes is one the network takes.
import { z } from '../common/schema.ts'

const MAX_PROMPT_CHARS = 200_000

export const ResponseFormat = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z.object({
    type: z.literal('json_schema'),
    json_schema: z.object({
      name: z.string().max(64).optional(),
      description: z.string().max(4096).optional(),
      schema: z.record(z.string(), z.unknown()).optional(),
      strict: z.boolean().nullable().optional()
    })
  })
])
export type ResponseFormat = z.infer<typeof ResponseFormat>

const Stop = z.union([z.string().min(1).max(64), z.array(z.string().min(1).max(64)).max(16)]).nullable()

/** Sampling and length fields shared by both completion routes. */
const Common = {
  model: z.string().min(1).max(256).describe('a base model id, an adapter CID, or an adapter name'),
  stream: z.boolean().nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
  max_tokens: z.number().int().min(1).max(4096).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  seed: z.number().int().min(0).max(0xffffffff).nullable().optional(),
  stop: Stop.optional(),
  n: z.number().int().min(1).max(1, 'only n=1 is supported').nullable().optional(),
  user: z.string().max(256).optional(),
  response_format: ResponseFormat.optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional()
}

const TextPart = z.object({ type: z.literal('text'), text: z.string() })
const Content = z.union([z.string(), z.array(TextPart).max(256)])

export const ChatMessage = z.discriminatedUnion('role', [
  z.object({ role: z.literal('system'), content: Content, name: z.string().optional() }),
  z.object({ role: z.literal('developer'), content: Content, name: z.string().optional() }),
  z.object({ role: z.literal('user'), content: Content, name: z.string().optional() }),
  z.object({
    role: z.literal('assistant'),
    content: Content.nullable().optional(),
    name: z.string().optional()
  })
])

export const ChatCompletionRequest = z.object({
  ...Common,
  messages: z.array(ChatMessage).min(1).max(256),
  max_completion_tokens: z.number().int().min(1).max(4096).nullable().optional(),
  logprobs: z.literal(false).nullable().optional().describe('log probabilities are not supported'),
  tools: z.array(z.unknown()).max(0, 'tools are not supported').optional(),
  tool_choice: z.literal('none').optional()
})
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>

export const CompletionRequest = z.object({
  ...Common,
  prompt: z.union([
    z.string().max(MAX_PROMPT_CHARS),
    z
      .array(z.string().max(MAX_PROMPT_CHARS))
      .length(1, 'give one prompt (batches of prompts are not supported)'),
    z.array(z.number().int().min(0).max(0xffffffff)).min(1).max(32_768),
    z.array(z.array(z.number().int().min(0).max(0xffffffff)).min(1).max(32_768)).length(1, 'give one prompt')
  ]),
  echo: z.literal(false).nullable().optional().describe('echo is not supported'),
  best_of: z.literal(1).nullable().optional(),
  logprobs: z.null().optional().describe('log probabilities are not supported'),
  suffix: z.null().optional()
})
export type CompletionRequest = z.infer<typeof CompletionRequest>

export const Usage = z.object({
  prompt_tokens: z.number().int(),
  completion_tokens: z.number().int(),
  total_tokens: z.number().int()
})

/** The `openlora` extension on every completion: the signed receipt and who served and was paid. */
export const OpenLoraExtension = z.object({
  receipt: z.unknown().describe('the signed receipt (openlora verify checks it)'),
  attribution: z
    .unknown()
    .describe("the receipt's attribution summary, and the full proof when the node sent it"),
  node: z.object({ peerId: z.string(), route: z.array(z.string()) }),
  paid: z.string().describe('wei paid for this job ("0" for a free or local job)'),
  jobId: z.string()
})

export const ChatCompletionResponse = z.object({
  id: z.string(),
  object: z.literal('chat.completion'),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(
    z.object({
      index: z.number().int(),
      message: z.object({ role: z.literal('assistant'), content: z.string(), refusal: z.null() }),
      finish_reason: z.enum(['stop', 'length']),
      logprobs: z.null()
    })
  ),
  usage: Usage,
  openlora: OpenLoraExtension
})

export const CompletionResponse = z.object({
  id: z.string(),
  object: z.literal('text_completion'),
  created: z.number().int(),
  model: z.string(),
  choices: z.array(
    z.object({
      index: z.number().int(),
      text: z.string(),
      finish_reason: z.enum(['stop', 'length']),
      logprobs: z.null()
    })
  ),
  usage: Usage,
  openlora: OpenLoraExtension
})

export const ModelObject = z.object({
  id: z.string(),
  object: z.literal('model'),
  created: z.number().int(),
  owned_by: z.string(),
  root: z.string(),
  parent: z.string().nullable(),
  openlora: z.object({
    kind: z.enum(['base', 'adapter']),
    aliases: z.array(z.string()),
    weightsHash: z.string().optional(),
    tiers: z.object({ hot: z.number().int(), warm: z.number().int(), cold: z.number().int() }),
    local: z
      .string()
      .nullable()
      .describe("this node's tier for it (base: 'hot'), null when only peers serve it"),
    nodes: z.array(z.object({ peerId: z.string(), tier: z.string(), pricePer1kTokens: z.string() })),
    minPricePer1kTokens: z.string().nullable()
  })
})
export const ModelList = z.object({ object: z.literal('list'), data: z.array(ModelObject) })
export type ModelObject = z.infer<typeof ModelObject>

export const ErrorResponse = z.object({
  error: z.object({
    message: z.string(),
    type: z.string(),
    param: z.string().nullable(),
    code: z.string().nullable()
  })
})

export const LoadAdapterRequest = z
  .object({
    lora_name: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9._:@/-]+$/)
      .optional(),
    lora_path: z.string().min(1).max(4096).optional().describe('an adapter directory on this machine'),
    cid: z
      .string()
      .min(1)
      .max(128)
      .optional()
      .describe('fetch this adapter CID from the peers that advertise it'),
    model: z.string().min(1).max(256).optional().describe('the base model (default: the only one served)')
  })
  .refine((b) => (b.lora_path === undefined) !== (b.cid === undefined), {
    message: 'give exactly one of lora_path or cid',
    path: ['lora_path']
  })

export const UnloadAdapterRequest = z
  .object({
    lora_name: z.string().min(1).max(128).optional(),
    cid: z.string().min(1).max(128).optional()
  })
  .refine((b) => b.lora_name !== undefined || b.cid !== undefined, {
    message: 'give lora_name or cid',
    path: ['lora_name']
  })
