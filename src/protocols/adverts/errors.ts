import { OpenLoraError } from '../../common/errors.ts'

/** Why an advert was refused; gossip maps each to REJECT (the sender misbehaved) or IGNORE. */
export type AdvertRejectReason =
  | 'oversized'
  | 'malformed'
  | 'not-canonical'
  | 'schema'
  | 'bad-signature'
  | 'bad-operator-binding'
  | 'from-mismatch'

/** Clock skew and lost races are not misbehaviour, so these only stop the advert spreading. */
export type AdvertIgnoreReason =
  | 'expired'
  | 'future-timestamp'
  | 'stale-sequence'
  | 'too-frequent'
  | 'own-advert'

export class InvalidAdvertError extends OpenLoraError<'INVALID_ADVERT'> {
  readonly reason: AdvertRejectReason

  constructor(reason: AdvertRejectReason, message: string, data: Record<string, unknown> = {}) {
    super('INVALID_ADVERT', message, { reason, ...data })
    this.reason = reason
  }
}
