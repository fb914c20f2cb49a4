// The `local` preset: starts anvil (npm @foundry-rs/anvil) on a free loopback port, deploys the
// contracts and funds the dev accounts with OPEN. Tests, the benchmark and `npm start` without an
// RPC use it; stop() kills anvil and waits for it to exit.
import { type ChildProcess, spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import {
  type Address,
  createPublicClient,
  createTestClient,
  createWalletClient,
  type Hex,
  http,
  type LocalAccount
} from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { createLogger, type Logger } from '../common/log.ts'
import { openTokenAbi } from './artifacts/index.ts'
import { chainFor } from './client.ts'
import { ANVIL_CHAIN_ID, type ChainAddresses } from './config.ts'
import { deployContracts } from './deploy.ts'
import { LocalChainError } from './errors.ts'

export interface LocalChainOptions {
  /** dev accounts (account 0 deploys, owns the token and is the treasury); default 10 */
  accounts?: number
  /** OPEN minted to every dev account, in wei; default 1,000,000 OPEN */
  mintPerAccount?: bigint
  withdrawalDelaySec?: number
  chainId?: number
  /** address anvil listens on; default 127.0.0.1 (the NAT tier gives one its namespaces reach) */
  host?: string
  /** path of the anvil binary; default node_modules/.bin/anvil */
  anvilPath?: string
  startTimeoutMs?: number
  logger?: Logger
}

export interface LocalChain {
  rpcUrl: string
  chainId: number
  addresses: ChainAddresses
  accounts: LocalAccount[]
  privateKeys: Hex[]
  /** gives an account gas money (e.g. a node's operator key, which is not a dev account) */
  setEthBalance(address: Address, wei: bigint): Promise<void>
  /** moves the chain clock (withdrawal delays in tests) */
  increaseTime(seconds: number): Promise<void>
  stop(): Promise<void>
}

const OPEN = 10n ** 18n

/** The platform binary itself (not the npm launcher script), so that stop() signals anvil directly. */
function anvilBinary(): string {
  const require = createRequire(import.meta.url)
  const pkg = `@foundry-rs/anvil-${process.platform}-${process.arch === 'x64' ? 'amd64' : process.arch}/package.json`
  try {
    return join(dirname(require.resolve(pkg)), 'bin', 'anvil')
  } catch {
    return join('node_modules', '.bin', 'anvil')
  }
}

function waitForListening(proc: ChildProcess, timeoutMs: number): Promise<{ port: number; keys: Hex[] }> {
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(
      () => done(new LocalChainError(`anvil did not start within ${timeoutMs} ms`, { out })),
      timeoutMs
    )
    const done = (err?: Error, v?: { port: number; keys: Hex[] }) => {
      clearTimeout(timer)
      proc.stdout?.off('data', onData)
      proc.off('exit', onExit)
      if (err) reject(err)
      else resolve(v!)
    }
    const onData = (d: Buffer) => {
      out += d.toString()
      const m = /Listening on [\d.]+:(\d+)/.exec(out)
      if (!m) return
      const keysPart = out.slice(out.indexOf('Private Keys'))
      const keys = [...keysPart.matchAll(/\(\d+\) (0x[0-9a-f]{64})/g)].map((k) => k[1] as Hex)
      done(undefined, { port: Number(m[1]), keys })
    }
    const onExit = (code: number | null) =>
      done(new LocalChainError(`anvil exited with code ${code} before listening`, { out }))
    proc.stdout?.on('data', onData)
    proc.on('exit', onExit)
    proc.on('error', (e) =>
      done(new LocalChainError(`could not start anvil: ${e.message}`, {}, { cause: e }))
    )
  })
}

export async function startLocalChain(opts: LocalChainOptions = {}): Promise<LocalChain> {
  const log = opts.logger ?? createLogger('chain:anvil')
  const chainId = opts.chainId ?? ANVIL_CHAIN_ID
  const nAccounts = opts.accounts ?? 10
  const bin = opts.anvilPath ?? anvilBinary()
  const proc = spawn(
    bin,
    [
      '--host',
      opts.host ?? '127.0.0.1',
      '--port',
      '0',
      '--accounts',
      String(nAccounts),
      '--chain-id',
      String(chainId)
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] }
  )
  const exited = new Promise<void>((r) => proc.once('exit', () => r()))
  const stop = async () => {
    if (proc.exitCode == null && proc.signalCode == null) {
      proc.kill('SIGTERM')
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000)
      await exited
      clearTimeout(t)
    }
  }
  try {
    const { port, keys } = await waitForListening(proc, opts.startTimeoutMs ?? 30_000)
    // anvil keeps logging every request; drain so its pipe never fills and blocks it
    proc.stdout?.resume()
    proc.stderr?.resume()
    const rpcUrl = `http://${opts.host ?? '127.0.0.1'}:${port}`
    const chain = chainFor(chainId, rpcUrl)
    const transport = http(rpcUrl)
    const accounts = keys.map((k) => privateKeyToAccount(k))
    const publicClient = createPublicClient({ chain, transport, pollingInterval: 50 })
    const deployer = createWalletClient({ chain, transport, account: accounts[0]! })
    const addresses = await deployContracts(publicClient, deployer, {
      withdrawalDelaySec: opts.withdrawalDelaySec
    })
    const mint = opts.mintPerAccount ?? 1_000_000n * OPEN
    if (mint > 0n) {
      for (const a of accounts) {
        const hash = await deployer.writeContract({
          address: addresses.token,
          abi: openTokenAbi,
          functionName: 'mint',
          args: [a.address, mint]
        })
        await publicClient.waitForTransactionReceipt({ hash })
      }
    }
    const testClient = createTestClient({ chain, transport, mode: 'anvil' })
    log.info('local chain ready', { rpcUrl, chainId, ...addresses })
    return {
      rpcUrl,
      chainId,
      addresses,
      accounts,
      privateKeys: keys,
      setEthBalance: (address, wei) => testClient.setBalance({ address, value: wei }),
      increaseTime: async (seconds) => {
        await testClient.increaseTime({ seconds })
        await testClient.mine({ blocks: 1 })
      },
      stop
    }
  } catch (err) {
    await stop()
    throw err instanceof LocalChainError
      ? err
      : new LocalChainError('local chain setup failed', {}, { cause: err })
  }
}
