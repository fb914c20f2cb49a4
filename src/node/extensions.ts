// Where later layers plug into the node without editing the composition root: each adds one
// entry to `extensions` (a config section with its defaults, and/or services built from config).
// Example (the infer protocol):
//   { name: 'infer', config: { infer: { schema: InferConfigSchema } },
//     services: (config) => ({ infer: infer(config.infer) }) }
// Services are built in list order after the core ones and get every core component plus the
// services built before them (components.services).
import { attributionExtension } from '../attribution/extension.ts'
import { chainExtension } from '../chain/extension.ts'
import type { z } from '../common/schema.ts'
import { datanetExchangeExtension } from '../protocols/datanet-exchange/extension.ts'
import { inferExtension } from '../protocols/infer/extension.ts'
import type { NodeConfig } from './config/schema.ts'
import type { ServiceFactory } from './services.ts'

export interface ConfigSection {
  /** a zod schema of the section whose parse of {} gives its defaults (every key has one) */
  schema: z.ZodType
}

export interface NodeExtension {
  name: string
  config?: Record<string, ConfigSection>
  services?: (config: NodeConfig) => Record<string, ServiceFactory>
}

// chain and attribution come first so the infer handler never sees a job before its payment gate
// and attribution provider have started (it looks both up per job).
export const extensions: NodeExtension[] = [
  chainExtension,
  attributionExtension,
  datanetExchangeExtension,
  inferExtension
]
