// The chain commands as a user runs them: `openlora chain local` in a child process writes its
// endpoint file; `openlora deposit`, `balance` and `rewards` talk to it through --chain FILE.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import { ChainClient } from '../../src/chain/client.ts'
import { signVoucher } from '../../src/chain/eip712.ts'
import { loadConfig } from '../../src/node/config/load.ts'
import { runCli } from '../helpers/cli.ts'

const OPEN = 10n ** 18n
let dir: string
let child: ChildProcess
let endpoint: {
  rpcUrl: string
  chainId: number
  addresses: Record<string, `0x${string}`>
  devAccounts: { address: `0x${string}`; privateKey: `0x${string}` }[]
}

const run = (argv: string[]) => runCli(...argv)

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'openlora-chain-cli-'))
  const file = join(dir, 'chain.json')
  child = spawn(
    process.execPath,
    ['src/node/cli/main.ts', 'chain', 'local', '--out', file, '--accounts', '4'],
    {
      stdio: ['ignore', 'ignore', 'inherit']
    }
  )
  const deadline = Date.now() + 60_000
  while (!existsSync(file)) {
    if (Date.now() > deadline || child.exitCode != null)
      throw new Error('openlora chain local did not write its endpoint')
    await new Promise((r) => setTimeout(r, 100))
  }
  endpoint = JSON.parse(readFileSync(file, 'utf8'))
})
test.after(async () => {
  if (child && child.exitCode == null) {
    const exited = new Promise((r) => child.once('exit', r))
    child.kill('SIGTERM')
    await exited
  }
  if (dir) rmSync(dir, { recursive: true, force: true })
})

test('deposit, balance and rewards through --chain FILE', async () => {
  const file = join(dir, 'chain.json')
  const [, nodeDev, clientDev] = endpoint.devAccounts
  const clientKey = join(dir, 'client.key')
  writeFileSync(clientKey, `${clientDev!.privateKey}\n`, { mode: 0o600 })

  // escrow is per (client, node): without a node to name, deposit is a usage error
  const noNode = await run([
    'deposit',
    '2.5',
    '--chain',
    file,
    '--key-file',
    clientKey,
    '--data-dir',
    join(dir, 'no-node')
  ])
  assert.equal(noNode.code, 2)
  assert.match(noNode.err, /--node ADDRESS/)
  const nodeFlag = ['--node', nodeDev!.address]
  const dep = await run(['deposit', '2.5', '--chain', file, '--key-file', clientKey, ...nodeFlag, '--json'])
  assert.equal(dep.code, 0)
  assert.equal(JSON.parse(dep.out).escrow, (25n * OPEN) / 10n + '')

  const bal = await run(['balance', clientDev!.address, '--chain', file, ...nodeFlag, '--json'])
  assert.equal(bal.code, 0)
  assert.equal(JSON.parse(bal.out).escrow, '2500000000000000000')

  // the chain file from $OPENLORA_CHAIN_FILE; the node's config loader ignores that name (it
  // reads OPENLORA_<SECTION>, so the old OPENLORA_CHAIN broke `openlora start`)
  process.env.OPENLORA_CHAIN_FILE = file
  try {
    const viaEnv = await run([
      'balance',
      clientDev!.address,
      ...nodeFlag,
      '--json',
      '--data-dir',
      join(dir, 'no-node')
    ])
    assert.equal(viaEnv.code, 0)
    assert.equal(JSON.parse(viaEnv.out).escrow, '2500000000000000000')
    assert.doesNotThrow(() => loadConfig({ env: { OPENLORA_CHAIN_FILE: file } }))
  } finally {
    delete process.env.OPENLORA_CHAIN_FILE
  }

  // the same through --rpc and --settlement alone (the other addresses come from Settlement)
  const viaRpc = await run([
    'balance',
    clientDev!.address,
    '--rpc',
    endpoint.rpcUrl,
    '--settlement',
    endpoint.addresses.settlement!,
    '--chain-id',
    String(endpoint.chainId),
    ...nodeFlag,
    '--json'
  ])
  assert.equal(viaRpc.code, 0)
  assert.equal(JSON.parse(viaRpc.out).escrow, '2500000000000000000')
  const wrongChain = await run([
    'balance',
    clientDev!.address,
    '--rpc',
    endpoint.rpcUrl,
    '--settlement',
    endpoint.addresses.settlement!,
    '--chain-id',
    '161201'
  ])
  assert.equal(wrongChain.code, 1)

  // a node claims one voucher; its rewards show up per adapter
  const owner = new ChainClient({
    ...endpoint,
    addresses: endpoint.addresses as never,
    account: endpoint.devAccounts[3]!.privateKey
  })
  const adapterId = `0x${'c1'.repeat(32)}` as const
  await owner.registerAdapter({ adapterId, modelHash: `0x${'01'.repeat(32)}`, feePer1kTokens: 1n })
  const node = new ChainClient({
    ...endpoint,
    addresses: endpoint.addresses as never,
    account: nodeDev!.privateKey
  })
  const { privateKeyToAccount } = await import('viem/accounts')
  const v = await signVoucher(privateKeyToAccount(clientDev!.privateKey), node.domain, {
    node: nodeDev!.address,
    adapterId,
    cumulativeAmount: OPEN
  })
  await node.claim([v])
  const rew = await run([
    'rewards',
    nodeDev!.address,
    '--chain',
    file,
    '--data-dir',
    join(dir, 'no-node'),
    '--json'
  ])
  assert.equal(rew.code, 0)
  const r = JSON.parse(rew.out)
  assert.equal(r.totals.claimed, OPEN.toString())
  assert.equal(r.perAdapter[0].adapterId, adapterId)
  assert.equal(r.withdrawable, ((OPEN * 7000n) / 10_000n).toString())

  const human = await run(['rewards', nodeDev!.address, '--chain', file, '--data-dir', join(dir, 'no-node')])
  assert.match(human.out, /withdrawable now: 0\.7 OPEN/)

  // bad input is a usage error (exit 2), not a crash
  const bad = await run(['deposit', '-1', '--chain', file, '--key-file', clientKey])
  assert.equal(bad.code, 2)
})

test.run()
