// The extensions this node runs, in order (the NodeExtension seam: src/common/service.ts). A layer
// joins by adding one entry; docs/ARCHITECTURE.md shows an example. Services are built in list
// order after the core ones and get every core component plus the services built before them
// (components.services).
import { attributionExtension } from '../attribution/extension.ts'
import { chainExtension } from '../chain/extension.ts'
import type { NodeExtension } from '../common/service.ts'
import { gatewayExtension } from '../gateway/extension.ts'
import { datanetExchangeExtension } from '../protocols/datanet-exchange/extension.ts'
import { inferExtension } from '../protocols/infer/extension.ts'
import { trainingExtension } from '../protocols/training/extension.ts'

// chain and attribution come first so the infer handler never sees a job before its payment gate
// and attribution provider have started (it looks both up per job).
export const extensions: NodeExtension[] = [
  chainExtension,
  attributionExtension,
  datanetExchangeExtension,
  inferExtension,
  trainingExtension,
  // last: it sends jobs through the infer service and reads the serving stack
  gatewayExtension
]
