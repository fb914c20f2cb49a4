// The worst cases of the paid jobs in flight, per channel and per client (H1): a voucher must cover
// them on its channel, and the client's escrow must cover them with what is owed, before another
// job starts. In memory only: the VoucherStore rebuilds them from its `inflight` records at start.
import type { Address, Hex } from 'viem'

export class Reservations {
  private readonly byChannel = new Map<Hex, bigint>()
  private readonly byClient = new Map<Address, bigint>()

  /** Adds `d` (negative to release) to the channel's and its client's reservation. */
  add(channel: Hex, client: Address, d: bigint): void {
    const c = (this.byChannel.get(channel) ?? 0n) + d
    if (c > 0n) this.byChannel.set(channel, c)
    else this.byChannel.delete(channel)
    const k = (this.byClient.get(client) ?? 0n) + d
    if (k > 0n) this.byClient.set(client, k)
    else this.byClient.delete(client)
  }

  ofChannel(channel: Hex): bigint {
    return this.byChannel.get(channel) ?? 0n
  }

  /** `client` as getAddress spells it */
  ofClient(client: Address): bigint {
    return this.byClient.get(client) ?? 0n
  }
}
