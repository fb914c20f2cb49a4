// Capability adverts on gossipsub: codec, validation, the advert service and the PeerTable.
import { AdvertService, type AdvertsComponents, type AdvertsInit } from './adverts.ts'

export type { AdvertStats, AdvertsComponents, AdvertsInit, OperatorBinding } from './adverts.ts'
export { AdvertService } from './adverts.ts'
export { BindingVerifier, operatorBindingMessage, signOperatorBinding } from './binding.ts'
export { bloomHas, createBloom } from './bloom.ts'
export * from './capability.ts'
export * from './codec.ts'
export * from './constants.ts'
export * from './errors.ts'
export * from './peer-table.ts'
export { AdvertSync, type SyncResult } from './sync.ts'
export * from './validate.ts'

/** js-libp2p style factory: options now, components at composition time. */
export function adverts(init: AdvertsInit = {}): (components: AdvertsComponents) => AdvertService {
  return (components) => new AdvertService(components, init)
}
