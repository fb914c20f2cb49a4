// `npm start` (= `openlora start --demo`): a node that works on a fresh clone with nothing
// configured. When no model is configured it serves the DEMO base model (3.7M parameters,
// pre-trained here on the King James Version with the project's own training graph) and the demo
// adapter (trained with `openlora train` on the demo datanet), both committed under assets/demo/
// and made by scripts/make-demo-model.ts (docs/DEMO-MODEL.md). It gives the adapter the demo
// datanet (six KJV passages from three contributors, src/node/demo-data.ts), so the suggested
// job echoes a passage and its contributor is credited and paid. On the local chain it registers
// both on-chain and funds a demo client. A second start finds all of it in the data dir and only
// re-registers on the fresh chain.
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Address, type Hex, zeroAddress } from 'viem'
import { ChainClient } from '../chain/client.ts'
import { CHAIN_ENDPOINT_FILE } from '../chain/extension.ts'
import type { ChainService } from '../chain/service.ts'
import type { Logger } from '../common/log.ts'
import { requireService } from '../common/service.ts'
import { cidDigest } from '../crypto/cid.ts'
import { toHex } from '../crypto/hash.ts'
import { inferConfigOf } from '../protocols/infer/extension.ts'
import { ADMIN_FILE } from './admin.ts'
import type { NodeConfig } from './config/schema.ts'
import { DEMO_CONTRIBUTORS, DEMO_PROMPT, DEMO_RECORDS, ensureDemoDatanet } from './demo-data.ts'
import { writeSecretFile } from './identity.ts'
import type { OpenLoraNode } from './node.ts'

export { DEMO_PROMPT }
/** the committed demo model's `_name_or_path` (assets/demo/model/config.json) */
export const DEMO_MODEL_ID = 'openlora-demo/kjv-base'
/** the committed model and adapter, made by scripts/make-demo-model.ts */
const DEMO_ASSETS = join(import.meta.dirname, '..', '..', 'assets', 'demo')
const OPEN = 10n ** 18n
/** 0.001 OPEN per 1,000 tokens: small, but a job visibly moves balances */
export const DEMO_PRICE = (OPEN / 1000n).toString()
const DEMO_DEPOSIT = 100n * OPEN

/** What `--demo` changes under the user's config file, env and flags. */
export const DEMO_CONFIG_BASE: Record<string, unknown> = {
  chain: { preset: 'local', claimIntervalSec: 60 },
  pricing: { pricePer1kTokens: DEMO_PRICE },
  // the dashboard's ModelFactory page trains on the demo datanet straight after `npm start`
  training: { offer: true }
}

export interface DemoPlan {
  config: NodeConfig
  modelDir: string
  adapterDir: string
  generated: boolean
}

export interface DemoInfo {
  /** the demo adapter (null when a real model is configured) */
  adapter: {
    cid: string
    datanetId: Hex
    datanetVersion: number
    /** the datanet's contributors and the passages each gave */
    contributors: { address: Address; name: string; records: string[] }[]
    modelHash: Hex
  } | null
  /** the demo client's key and funded escrow (local chain only) */
  clientKeyFile: string | null
}

/**
 * Copies the committed demo model and adapter into the data dir when the config names no model;
 * null when it does. A marker holding the assets' training records is written last, so an
 * interrupted copy, or a data dir from an older demo (the random-weight one), is copied afresh.
 */
export async function prepareDemo(config: NodeConfig, log: Logger): Promise<DemoPlan | null> {
  const infer = inferConfigOf(config)
  if (infer.models.length > 0) return null
  const dir = join(config.dataDir, 'demo')
  const modelDir = join(dir, 'model')
  const adapterDir = join(dir, 'adapter')
  let generated = false
  for (const [what, to] of [
    ['model', modelDir],
    ['adapter', adapterDir]
  ] as const) {
    const from = join(DEMO_ASSETS, what)
    const stamp = what === 'model' ? 'pretraining.json' : 'training-record.json'
    if (!existsSync(join(from, stamp)))
      throw new Error(`the demo ${what} is missing at ${from}; run: node scripts/make-demo-model.ts`)
    const want = readFileSync(join(from, stamp), 'utf8')
    const marker = join(to, '.complete')
    if (existsSync(marker) && readFileSync(marker, 'utf8') === want) continue
    log.info(`copying the DEMO ${what}`, { from, to })
    rmSync(to, { recursive: true, force: true })
    cpSync(from, to, { recursive: true })
    writeFileSync(marker, want)
    generated = true
  }
  return { config: { ...config, infer: { ...infer, models: [modelDir] } }, modelDir, adapterDir, generated }
}

/** After the node started: the adapter in its store, the datanet and provenance, the chain. */
export async function finishDemo(node: OpenLoraNode, plan: DemoPlan | null, log: Logger): Promise<DemoInfo> {
  const chain = node.services.chain
  const local = chain?.localChain
  const adapter = plan ? await demoAdapter(node, plan) : null
  let clientKeyFile: string | null = null
  if (chain && local) {
    // a local chain starts empty on every start: register the datanet and the adapter again
    if (adapter) await registerDemo(node, chain, local, adapter)
    const client = new ChainClient({ ...chain.endpoint, account: local.accounts[1]! })
    // escrow is per (client, node): the demo client's is at this node
    const operator = node.identity.operator.address as Address
    if ((await client.escrowOf(client.address, operator)).balance < DEMO_DEPOSIT / 10n)
      await client.deposit(DEMO_DEPOSIT, { node: operator })
    clientKeyFile = join(node.dataDir.path, 'demo-client.key')
    writeSecretFile(clientKeyFile, `${local.privateKeys[1]}\n`)
  }
  log.debug('demo ready', { adapter: adapter?.cid, datanet: adapter?.datanetId })
  return { adapter, clientKeyFile }
}

type LocalChain = NonNullable<ChainService['localChain']>

/** The demo adapter imported, with its datanet (created once, from the committed records). */
async function demoAdapter(node: OpenLoraNode, plan: DemoPlan): Promise<NonNullable<DemoInfo['adapter']>> {
  const serving = requireService(node.services, 'serving')
  const model = serving.models()[0]!
  const { cid } = await serving.store(model.modelId)!.import(plan.adapterDir)
  // the datanet's owner and contributors are anvil's dev accounts #2–#5 (the same on every start;
  // #1 is the demo client), fixed in demo-data.ts so the datanet's id and root never change
  const attribution = requireService(node.services, 'attribution')
  let provenance = await attribution.provenance.get(cid)
  if (!provenance) {
    const id = await ensureDemoDatanet(attribution.store)
    provenance = await attribution.provenance.set(cid, { datanets: [{ id, version: 1, bp: 10_000 }] })
  }
  const datanet = provenance.datanets[0]!
  const contributors = Object.entries(DEMO_CONTRIBUTORS).map(([name, address]) => ({
    address: address as Address,
    name,
    records: DEMO_RECORDS.filter((r) => r.contributor === name).map((r) => r.title)
  }))
  return {
    cid,
    datanetId: datanet.id as Hex,
    datanetVersion: datanet.version,
    contributors,
    modelHash: model.weightsHash
  }
}

async function registerDemo(
  node: OpenLoraNode,
  chain: ChainService,
  local: LocalChain,
  a: NonNullable<DemoInfo['adapter']>
): Promise<void> {
  const owner = new ChainClient({ ...chain.endpoint, account: local.accounts[2]! })
  const attribution = requireService(node.services, 'attribution')
  if (!(await owner.datanetExists(a.datanetId))) {
    const version = await attribution.store.getVersion(a.datanetId, a.datanetVersion)
    await owner.createDatanet(a.datanetId, `0x${'00'.repeat(32)}`)
    await owner.appendDatanetVersion(a.datanetId, version.root as Hex)
  }
  const adapterId = toHex(cidDigest(a.cid)) as Hex
  const current = await owner.adapterOwner(adapterId).catch(() => zeroAddress)
  if (current === zeroAddress)
    await owner.registerAdapter({
      adapterId,
      modelHash: a.modelHash,
      feePer1kTokens: BigInt(node.config.pricing.pricePer1kTokens),
      datanets: [{ id: a.datanetId, weightBps: 10_000 }]
    })
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`
}

/** The few lines `npm start` prints: what runs, and the command that sends it a job. */
export function demoBanner(node: OpenLoraNode, info: DemoInfo | null): string {
  const addrs = node.libp2p.getMultiaddrs().map((m) => m.toString())
  const tcp = addrs.filter((a) => a.includes('/tcp/') && !a.includes('/ws'))
  const via = tcp.find((a) => a.includes('/127.0.0.1/')) ?? tcp[0] ?? addrs[0] ?? ''
  const serving = node.services.serving
  const models = serving?.models() ?? []
  const chain = node.services.chain
  const price = node.config.pricing.pricePer1kTokens
  const dataDir = node.dataDir.path
  const demoModel = models.some((m) => m.modelId === DEMO_MODEL_ID)
  const lines = [
    `OpenLoRA node ${demoModel ? '(DEMO: a 3.7M-parameter model pre-trained here on the King James Version)' : ''}`.trimEnd(),
    `  peer id    ${node.peerId}`,
    ...addrs.map((a, i) => `  ${i === 0 ? 'addresses ' : '          '} ${a}`),
    `  operator   ${node.identity.operator.address} (receives rewards)`,
    ...models.map(
      (m) => `  model      ${m.modelId}${m.modelId === DEMO_MODEL_ID ? ' [DEMO]' : ''} ${m.weightsHash}`
    ),
    ...(info?.adapter
      ? [
          `  adapter    ${info.adapter.cid} [DEMO] (trained by openlora train on datanet ${info.adapter.datanetId.slice(0, 10)}…)`,
          ...info.adapter.contributors.map(
            (c, i) =>
              `  ${i === 0 ? 'contributor' : '           '} ${c.address} ${c.name}: ${c.records.join(', ')}`
          )
        ]
      : [`  adapters   ${serving?.store()?.tiers().cold ?? 0} in the store`]),
    chain
      ? `  chain      ${chain.localChain ? 'local anvil' : 'chain'} ${chain.endpoint.chainId} at ${chain.endpoint.rpcUrl}, Settlement ${chain.endpoint.addresses.settlement}; price ${price} wei per 1k tokens`
      : '  chain      none (free jobs only)'
  ]
  const model = models[0]?.modelId
  if (model) {
    const pay =
      chain && info?.clientKeyFile && price !== '0'
        ? ` --pay --chain ${shellQuote(join(dataDir, CHAIN_ENDPOINT_FILE))} --key-file ${shellQuote(info.clientKeyFile)} --data-dir ${shellQuote(dataDir)}`
        : ''
    const adapter = info?.adapter ? ` --adapter ${info.adapter.cid}` : ''
    // the job's result (receipt and, when span-attributed, its proof) goes to a file the
    // attribution line below checks against the datanet's on-chain roots
    const result = join(dataDir, 'last-job.json')
    lines.push(
      'Send it a job:',
      `  npm run openlora -- infer --via ${via} --model ${shellQuote(model)}${adapter} --prompt ${shellQuote(DEMO_PROMPT)}${pay} --out ${shellQuote(result)}`
    )
    if (chain)
      lines.push(
        `Balances:   npm run openlora -- balance --data-dir ${shellQuote(dataDir)}${info?.clientKeyFile ? ` --key-file ${shellQuote(info.clientKeyFile)}` : ''}`,
        `Rewards:    npm run openlora -- rewards --data-dir ${shellQuote(dataDir)}`,
        ...(info?.adapter
          ? [
              `Attribution: npm run openlora -- datanet verify-proof ${shellQuote(result)} --chain ${shellQuote(join(dataDir, CHAIN_ENDPOINT_FILE))}`
            ]
          : [])
      )
  }
  const gateway = node.services.gateway?.url
  if (gateway) {
    const dashboard = node.services.gateway?.dashboardUrl
    if (dashboard) {
      lines.push(`Dashboard:  ${dashboard}`)
      // the training routes are admin routes: the page asks for this token once
      lines.push(`ModelFactory: ${dashboard}#/factory (admin token: "token" in ${join(dataDir, ADMIN_FILE)})`)
    }
    lines.push(`OpenAI API: ${gateway}/v1 (docs: ${gateway}/docs)`)
    if (model) {
      const target = info?.adapter?.cid ?? model
      const body = JSON.stringify({
        model: target,
        messages: [{ role: 'user', content: DEMO_PROMPT }],
        max_tokens: 16
      })
      lines.push(
        `  curl ${gateway}/v1/chat/completions -H 'content-type: application/json' -d ${shellQuote(body)}`
      )
    }
  }
  return `${lines.join('\n')}\n`
}
