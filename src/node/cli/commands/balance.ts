// `openlora balance [ADDRESS]`: OPEN in the wallet, in escrow at a node (--node, or the node of
// --data-dir; escrow is per (client, node)) with any pending withdrawal, and credited rewards.
import type { Command } from '../../cli/command.ts'
import {
  chainOptions,
  clientFromFlags,
  formatOpen,
  jsonLine,
  nodeFromFlags,
  nodeOption,
  subjectAddress
} from './chain-options.ts'

export const balanceCommand: Command = {
  name: 'balance',
  summary: 'show OPEN in the wallet, in escrow and in withdrawable rewards',
  positionals: '[ADDRESS]',
  options: { ...chainOptions, ...nodeOption },
  async run({ values, positionals }) {
    const client = await clientFromFlags(values, false)
    const who = subjectAddress(client, positionals[0])
    const node = nodeFromFlags(values)
    const [wallet, escrow, credits] = await Promise.all([
      client.tokenBalance(who),
      node ? client.escrowOf(who, node) : Promise.resolve(null),
      client.creditsOf(who)
    ])
    const out = {
      account: who,
      chainId: client.chainId,
      wallet,
      node: node ?? null,
      escrow: escrow?.balance ?? null,
      withdrawalUnlockAt: escrow?.unlockAt ?? null,
      credits
    }
    if (values.json === true) console.log(jsonLine(out))
    else {
      console.log(`account   ${who} (chain ${client.chainId})`)
      console.log(`wallet    ${formatOpen(wallet)}`)
      if (!escrow || !node) console.log('escrow    (per node: give --node ADDRESS or --data-dir of the node)')
      else
        console.log(
          `escrow    ${formatOpen(escrow.balance)} at node ${node}${escrow.unlockAt > 0n ? ` (withdrawal requested, unlocks at ${new Date(Number(escrow.unlockAt) * 1000).toISOString()})` : ''}`
        )
      console.log(`rewards   ${formatOpen(credits)} withdrawable`)
    }
    return 0
  }
}
