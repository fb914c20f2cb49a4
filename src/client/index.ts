export {
  InferClient,
  type InferClientComponents,
  type InferInput,
  type InferOptions,
  type InferResult,
  newJobId
} from './client.ts'
export { clientFor, createClientHost, dialerOf } from './host.ts'
export { JobPayer, type PayerJob, type PayerOptions, PaymentRefusedError } from './payer.ts'
