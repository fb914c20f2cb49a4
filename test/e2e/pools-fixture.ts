// What the published-pools tests share: an adapter whose registration declares one datanet, and
// one paid job through a node's ChainService whose receipt credits the given contributors, so a
// claim funds one contributor pool.
import type { Address, Hex, LocalAccount } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import type { LocalChain } from '../../src/chain/anvil.ts'
import { ChainClient } from '../../src/chain/client.ts'
import { amountDue, signVoucher } from '../../src/chain/eip712.ts'
import type { ChainService } from '../../src/chain/service.ts'

const OPEN = 10n ** 18n

/** Dev account 1 owns the datanet and the adapter declaring it, account 2 pays; Bob and Alice are fresh. */
export async function poolParties(chain: LocalChain) {
  const [, ownerAcc, clientAcc] = chain.accounts
  const owner = new ChainClient({ ...chain, account: ownerAcc! })
  const client = new ChainClient({ ...chain, account: clientAcc! })
  const ids = { datanetId: `0x${'d1'.repeat(32)}` as Hex, adapterId: `0x${'a1'.repeat(32)}` as Hex }
  await declaredAdapter(owner, ids.adapterId, ids.datanetId)
  return {
    owner,
    client,
    clientAcc: clientAcc!,
    ids,
    bob: privateKeyToAccount(generatePrivateKey()).address,
    alice: privateKeyToAccount(generatePrivateKey()).address
  }
}

async function declaredAdapter(owner: ChainClient, adapterId: Hex, datanetId: Hex): Promise<void> {
  await owner.createDatanet(datanetId, `0x${'00'.repeat(32)}`)
  await owner.registerAdapter({
    adapterId,
    modelHash: `0x${'01'.repeat(32)}`,
    feePer1kTokens: OPEN,
    datanets: [{ id: datanetId, weightBps: 10_000 }]
  })
}

/** One job of 500 + 500 tokens at 1 OPEN per 1k, paid and finished with that attribution. */
export async function paidAttributedJob(
  svc: ChainService,
  client: LocalAccount,
  operator: Address,
  ids: { adapterId: Hex; datanetId: Hex },
  contributors: { address: Address; bp: number }[]
): Promise<void> {
  const due = amountDue(500, 500, OPEN)
  const v = await signVoucher(client, svc.domain, {
    node: operator,
    adapterId: ids.adapterId,
    cumulativeAmount: due
  })
  const job = await svc.openJob(v, {
    jobId: `0x${'01'.repeat(16)}`,
    adapterId: ids.adapterId,
    maxAmountDue: due,
    promptTokens: 500,
    pricePer1kTokens: OPEN
  })
  await job.finish({
    amountDue: due,
    attribution: { datanets: [{ id: ids.datanetId, bp: 10_000 }], contributors }
  })
}
