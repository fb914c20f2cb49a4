// The paying client of `openlora infer --pay` and `openlora train --pay`: a persisted
// VoucherWallet (<data-dir>/client-wallet) behind a JobPayer, on the chain the flags name.
import { join } from 'node:path'
import { UsageError } from '../../cli/command.ts'
import { dataDirOf, endpointFromFlags, keyFromFlags } from './chain-options.ts'

/**
 * The client's VoucherWallet (persisted, so each voucher covers what earlier jobs on the channel
 * owe) behind a JobPayer that answers a node's PAYMENT_REQUIRED terms.
 */
export async function openWallet(
  values: Record<string, unknown>,
  /** check what the chain paid a node before paying it again (JobPayer `claimedOf`, THREATS.md T2) */
  opts: { audit?: boolean } = {}
) {
  const v = values as Record<string, string | boolean | string[] | undefined>
  const endpoint = await endpointFromFlags(v)
  const key = keyFromFlags(v, true)!
  const maxPrice = v['max-price']
  if (maxPrice !== undefined && !/^[0-9]+$/.test(String(maxPrice)))
    throw new UsageError('--max-price must be an integer number of wei per 1k tokens')
  const { privateKeyToAccount } = await import('viem/accounts')
  const { Level } = await import('level')
  const { VoucherWallet } = await import('../../../chain/wallet.ts')
  const { JobPayer } = await import('../../../client/payer.ts')
  const domain = { chainId: endpoint.chainId, settlement: endpoint.addresses.settlement }
  const db = new Level<string, unknown>(join(dataDirOf(v), 'client-wallet'), { valueEncoding: 'json' })
  await db.open()
  const wallet = new VoucherWallet(privateKeyToAccount(key), domain, { db })
  const account = privateKeyToAccount(key)
  const audit = opts.audit
    ? await (async () => {
        const { ChainClient } = await import('../../../chain/client.ts')
        const chain = new ChainClient({ ...endpoint, account })
        return {
          claimedOf: (node: `0x${string}`, adapterId: `0x${string}`) =>
            chain.claimedOf(account.address, node, adapterId)
        }
      })()
    : {}
  const payer = new JobPayer(wallet, domain, {
    ...audit,
    ...(maxPrice !== undefined ? { maxPricePer1kTokens: BigInt(String(maxPrice)) } : {})
  })
  return { payer, close: () => db.close() }
}
