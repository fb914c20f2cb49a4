// `openlora chain local`: starts anvil, deploys the contracts, funds the dev accounts with OPEN,
// writes the endpoint (RPC URL, chain id, addresses, dev keys) to --out, and runs until stopped.
// Point nodes (chain section) and the deposit/balance/rewards commands (--chain FILE) at it.
import { startLocalChain } from '../../../chain/anvil.ts'
import type { Command } from '../../cli/command.ts'
import { UsageError } from '../../cli/command.ts'
import { writeSecret } from '../../secret-file.ts'

export const chainLocalCommand: Command = {
  name: 'chain local',
  summary: 'start a local anvil chain with the OpenLoRA contracts deployed; runs until Ctrl-C',
  options: {
    out: {
      type: 'string',
      description: 'write the endpoint JSON here (default ./chain.json)',
      valueName: 'FILE'
    },
    'withdrawal-delay': {
      type: 'string',
      description: 'escrow withdrawal delay in seconds (default 3600)',
      valueName: 'SEC'
    },
    accounts: { type: 'string', description: 'dev accounts to create and fund (default 10)', valueName: 'N' }
  },
  async run({ values }) {
    const delay = Number(values['withdrawal-delay'] ?? 3600)
    if (!Number.isInteger(delay) || delay < 3600)
      throw new UsageError(
        '--withdrawal-delay must be a whole number of seconds, at least 3600 (Settlement.MIN_WITHDRAWAL_DELAY)'
      )
    const accounts = Number(values.accounts ?? 10)
    if (!Number.isInteger(accounts) || accounts < 1 || accounts > 1000)
      throw new UsageError('--accounts must be 1..1000')
    const chain = await startLocalChain({ withdrawalDelaySec: delay, accounts })
    const out = (values.out as string | undefined) ?? 'chain.json'
    const endpoint = {
      preset: 'custom',
      rpcUrl: chain.rpcUrl,
      chainId: chain.chainId,
      addresses: chain.addresses,
      // anvil's well-known dev keys: for local testing only
      devAccounts: chain.accounts.map((a, i) => ({ address: a.address, privateKey: chain.privateKeys[i] }))
    }
    // by rename: whoever polls for the file (a test, a script) never reads it half written,
    // and the dev keys in it are 0600 like any key file
    writeSecret(out, `${JSON.stringify(endpoint, null, 2)}\n`)
    console.log(`local chain ${chain.chainId} at ${chain.rpcUrl}; endpoint written to ${out}`)
    console.log(`settlement ${chain.addresses.settlement}  token ${chain.addresses.token}`)
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve)
      process.once('SIGTERM', resolve)
    })
    await chain.stop()
    return 0
  }
}

export const chainCommands: Command[] = [chainLocalCommand]
