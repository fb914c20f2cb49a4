// `openlora deposit AMOUNT --node ADDRESS`: moves OPEN from the key's wallet into its escrow at one
// node in Settlement, from which that node is paid by vouchers (an escrow per (client, node), so
// one balance can never be promised to two nodes). Approves the contract first when needed.
import type { Command } from '../../cli/command.ts'
import { UsageError } from '../../cli/command.ts'
import {
  chainOptions,
  clientFromFlags,
  formatOpen,
  jsonLine,
  nodeFromFlags,
  nodeOption,
  parseOpen
} from './chain-options.ts'

export const depositCommand: Command = {
  name: 'deposit',
  summary: 'deposit OPEN into your escrow at a node so that it can be paid with vouchers',
  positionals: 'AMOUNT',
  options: {
    ...chainOptions,
    ...nodeOption,
    wei: { type: 'boolean', description: 'AMOUNT is in wei, not OPEN' }
  },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError('give exactly one AMOUNT, e.g. `openlora deposit 2.5`')
    const amount = parseOpen(positionals[0]!, values.wei === true)
    const node = nodeFromFlags(values)
    if (!node)
      throw new UsageError(
        'say which node the escrow is for: --node ADDRESS (its operator), or --data-dir of it'
      )
    const client = await clientFromFlags(values, true)
    const tx = await client.deposit(amount, { node })
    const { balance } = await client.escrowOf(client.address, node)
    if (values.json === true)
      console.log(
        jsonLine({ account: client.address, node, deposited: amount, escrow: balance, tx: tx.hash })
      )
    else
      console.log(
        `deposited ${formatOpen(amount)}; escrow of ${client.address} at node ${node} is now ${formatOpen(balance)} (tx ${tx.hash})`
      )
    return 0
  }
}
