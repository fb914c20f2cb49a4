// `openlora deposit AMOUNT`: moves OPEN from the key's wallet into its escrow in Settlement, from
// which nodes are paid by vouchers. Approves the contract first when needed.
import type { Command } from '../../cli/command.ts'
import { UsageError } from '../../cli/command.ts'
import { chainOptions, clientFromFlags, formatOpen, jsonLine, parseOpen } from './chain-options.ts'

export const depositCommand: Command = {
  name: 'deposit',
  summary: 'deposit OPEN into your escrow so that nodes can be paid with vouchers',
  positionals: 'AMOUNT',
  options: { ...chainOptions, wei: { type: 'boolean', description: 'AMOUNT is in wei, not OPEN' } },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError('give exactly one AMOUNT, e.g. `openlora deposit 2.5`')
    const amount = parseOpen(positionals[0]!, values.wei === true)
    const client = await clientFromFlags(values, true)
    const tx = await client.deposit(amount)
    const { balance } = await client.escrowOf(client.address)
    if (values.json === true)
      console.log(jsonLine({ account: client.address, deposited: amount, escrow: balance, tx: tx.hash }))
    else
      console.log(
        `deposited ${formatOpen(amount)}; escrow of ${client.address} is now ${formatOpen(balance)} (tx ${tx.hash})`
      )
    return 0
  }
}
