// `openlora balance [ADDRESS]`: OPEN in the wallet, in escrow (and any pending withdrawal), and
// credited rewards not yet withdrawn.
import type { Command } from '../../cli/command.ts'
import { chainOptions, clientFromFlags, formatOpen, jsonLine, subjectAddress } from './chain-options.ts'

export const balanceCommand: Command = {
  name: 'balance',
  summary: 'show OPEN in the wallet, in escrow and in withdrawable rewards',
  positionals: '[ADDRESS]',
  options: { ...chainOptions },
  async run({ values, positionals }) {
    const client = await clientFromFlags(values, false)
    const who = subjectAddress(client, positionals[0])
    const [wallet, escrow, credits] = await Promise.all([
      client.tokenBalance(who),
      client.escrowOf(who),
      client.creditsOf(who)
    ])
    const out = {
      account: who,
      chainId: client.chainId,
      wallet,
      escrow: escrow.balance,
      withdrawalUnlockAt: escrow.unlockAt,
      credits
    }
    if (values.json === true) console.log(jsonLine(out))
    else {
      console.log(`account   ${who} (chain ${client.chainId})`)
      console.log(`wallet    ${formatOpen(wallet)}`)
      console.log(
        `escrow    ${formatOpen(escrow.balance)}${escrow.unlockAt > 0n ? ` (withdrawal requested, unlocks at ${new Date(Number(escrow.unlockAt) * 1000).toISOString()})` : ''}`
      )
      console.log(`rewards   ${formatOpen(credits)} withdrawable`)
    }
    return 0
  }
}
