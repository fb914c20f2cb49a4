// /openlora/infer/1.0.0: the protocol a client uses to run a job on any peer of the network.
import { type InferComponents, type InferInit, InferService } from './infer.ts'

export type {
  AdapterFetcher,
  AttributionProvider,
  GenerateRequest,
  ServingBackend,
  TokenEvent
} from './backend.ts'
export * from './codec.ts'
export * from './constants.ts'
export * from './errors.ts'
export {
  type InferComponents,
  type InferHost,
  type InferInit,
  InferService,
  provenanceAttribution
} from './infer.ts'
export * from './receipt.ts'

export function infer(init: InferInit = {}): (components: InferComponents) => InferService {
  return (components) => new InferService(components, init)
}
