import { AdapterExchange, type AdapterExchangeComponents, type AdapterExchangeInit } from './exchange.ts'

export * from './constants.ts'
export * from './errors.ts'
export {
  AdapterExchange,
  type AdapterExchangeComponents,
  type AdapterExchangeHost,
  type AdapterExchangeInit,
  type AdapterFileSet,
  type AdapterSink,
  type AdapterSource
} from './exchange.ts'

export function adapterExchange(init: AdapterExchangeInit = {}) {
  return (components: AdapterExchangeComponents): AdapterExchange => new AdapterExchange(components, init)
}
