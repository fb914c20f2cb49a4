// The datanet version roots are meant to be recorded on-chain and checked by contracts: compile
// a small verifier that rebuilds the leaf with abi.encode and calls OpenZeppelin's
// MerkleProof.verify, deploy it on a real anvil, and check our proofs (and that broken ones fail).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createPublicClient, createWalletClient, defineChain, type Hex, http } from 'viem'
import { buildMerkleTree, contributionLeaf } from '../../src/attribution/merkle.ts'
import { type LocalChain, startLocalChain } from '../../src/chain/anvil.ts'
import { cidDigest, cidForBytes } from '../../src/crypto/cid.ts'
import { toHex } from '../../src/crypto/hash.ts'
import { makeTokenizerConfig, makeTokenizerJson } from '../../src/runtime/fixtures/make-model.ts'
import { runCli as cli } from '../helpers/cli.ts'

const require = createRequire(import.meta.url)
const VERIFIER = `// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
contract ContributionVerifier {
  function leaf(bytes32 contributionDigest, address contributor) public pure returns (bytes32) {
    return keccak256(bytes.concat(keccak256(abi.encode(contributionDigest, contributor))));
  }
  function verify(bytes32[] calldata proof, bytes32 root, bytes32 contributionDigest, address contributor)
    external pure returns (bool)
  {
    return MerkleProof.verifyCalldata(proof, root, leaf(contributionDigest, contributor));
  }
}`

function compile(): { abi: unknown[]; bytecode: Hex } {
  const solc = require('solc') as { compile(input: string, opts: unknown): string }
  const input = {
    language: 'Solidity',
    sources: { 'V.sol': { content: VERIFIER } },
    settings: { outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } } }
  }
  const out = JSON.parse(
    solc.compile(JSON.stringify(input), {
      import: (p: string) => ({ contents: readFileSync(require.resolve(p), 'utf8') })
    })
  )
  const errors = (out.errors ?? []).filter((e: { severity: string }) => e.severity === 'error')
  if (errors.length > 0)
    throw new Error(errors.map((e: { formattedMessage: string }) => e.formattedMessage).join('\n'))
  const c = out.contracts['V.sol'].ContributionVerifier
  return { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` }
}

let chain: LocalChain
let dir: string
test.before(async () => {
  process.env.OPENLORA_LOG_LEVEL = 'warn'
  chain = await startLocalChain({ accounts: 2 })
  dir = mkdtempSync(join(tmpdir(), 'datanet-chain-'))
})
test.after(async () => {
  await chain?.stop()
  rmSync(dir, { recursive: true, force: true })
})

test('OpenZeppelin MerkleProof accepts every contribution proof of a version and rejects altered ones', async () => {
  const { abi, bytecode } = compile()
  const c = defineChain({
    id: chain.chainId,
    name: 'anvil',
    nativeCurrency: { name: 'ETH', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [chain.rpcUrl] } }
  })
  const wallet = createWalletClient({ account: chain.accounts[0]!, chain: c, transport: http(chain.rpcUrl) })
  const pub = createPublicClient({ chain: c, transport: http(chain.rpcUrl) })
  const hash = await wallet.deployContract({ abi, bytecode })
  const { contractAddress } = await pub.waitForTransactionReceipt({ hash })
  const call = (functionName: string, args: unknown[]) =>
    pub.readContract({ address: contractAddress!, abi, functionName, args }) as Promise<unknown>

  // 7 contributions (an odd count exercises the promoted node), two by the same contributor.
  const entries = Array.from({ length: 7 }, (_, i) => ({
    cid: cidForBytes(new Uint8Array([i, 42])),
    contributor: `0x${(0xc0 + (i % 6)).toString(16).padStart(40, '0')}` as Hex
  }))
  const leaves = entries.map((e) => contributionLeaf(e.cid, e.contributor))
  const tree = buildMerkleTree(leaves)
  for (const [i, e] of entries.entries()) {
    const digest = toHex(cidDigest(e.cid))
    assert.is(await call('leaf', [digest, e.contributor]), leaves[i], 'leaf encoding matches abi.encode')
    assert.is(await call('verify', [tree.proof(leaves[i]!), tree.root, digest, e.contributor]), true)
    assert.is(
      await call('verify', [tree.proof(leaves[i]!), tree.root, digest, `0x${'ee'.repeat(20)}`]),
      false,
      'another contributor does not verify'
    )
  }
  const path = [...tree.proof(leaves[0]!)]
  path[1] = `0x${'00'.repeat(32)}`
  assert.is(
    await call('verify', [path, tree.root, toHex(cidDigest(entries[0]!.cid)), entries[0]!.contributor]),
    false
  )
})

test('datanet register records every version root on-chain, and verify-proof checks against them', async () => {
  const dataDir = join(dir, 'node')
  const modelDir = join(dir, 'model')
  mkdirSync(modelDir)
  writeFileSync(join(modelDir, 'tokenizer.json'), JSON.stringify(makeTokenizerJson(512)))
  writeFileSync(join(modelDir, 'tokenizer_config.json'), JSON.stringify(makeTokenizerConfig()))
  const endpoint = join(dir, 'chain.json')
  writeFileSync(
    endpoint,
    JSON.stringify({ rpcUrl: chain.rpcUrl, chainId: chain.chainId, addresses: chain.addresses })
  )
  const keyFile = join(dir, 'owner.key')
  writeFileSync(keyFile, chain.privateKeys[0]!, { mode: 0o600 })
  const otherKey = join(dir, 'other.key')
  writeFileSync(otherKey, chain.privateKeys[1]!, { mode: 0o600 })
  const d = ['--data-dir', dataDir]
  const c = ['--chain', endpoint]
  const owner = chain.accounts[0]!.address
  const id = JSON.parse(
    (await cli('datanet', 'create', ...d, '--name', 'on-chain', '--owner', owner, '--json')).out
  ).id
  writeFileSync(
    join(dir, 'a.txt'),
    'A lighthouse keeper wrote every evening about the ships, the weather and the gulls on the rail.'
  )
  writeFileSync(
    join(dir, 'b.txt'),
    'In the market the baker sold bread with seeds, and the children waited for the warm rolls at noon.'
  )
  const bob = `0x${'0b'.repeat(20)}`
  assert.is(
    (
      await cli(
        'datanet',
        'contribute',
        ...d,
        '--datanet',
        id,
        '--file',
        join(dir, 'a.txt'),
        '--contributor',
        bob
      )
    ).code,
    0
  )
  const v1 = JSON.parse((await cli('datanet', 'publish', ...d, '--datanet', id, '--json')).out)

  const notOwner = await cli('datanet', 'register', ...d, ...c, '--key-file', otherKey, '--datanet', id)
  assert.is(notOwner.code, 2)
  assert.match(notOwner.err, /the signing key is/)
  const r1 = await cli('datanet', 'register', ...d, ...c, '--key-file', keyFile, '--datanet', id, '--json')
  assert.is(r1.code, 0, r1.err)
  assert.equal(JSON.parse(r1.out).appended, 1)

  assert.is(
    (
      await cli(
        'datanet',
        'contribute',
        ...d,
        '--datanet',
        id,
        '--file',
        join(dir, 'b.txt'),
        '--contributor',
        bob
      )
    ).code,
    0
  )
  const v2 = JSON.parse((await cli('datanet', 'publish', ...d, '--datanet', id, '--json')).out)
  const r2 = JSON.parse(
    (await cli('datanet', 'register', ...d, ...c, '--key-file', keyFile, '--datanet', id, '--json')).out
  )
  assert.equal([r2.versionsOnChain, r2.appended], [2, 1])
  const abi = [
    {
      type: 'function',
      name: 'versionRoot',
      stateMutability: 'view',
      inputs: [
        { name: 'datanetId', type: 'bytes32' },
        { name: 'version', type: 'uint32' }
      ],
      outputs: [{ name: 'root', type: 'bytes32' }]
    }
  ] as const
  const pub = createPublicClient({ transport: http(chain.rpcUrl) })
  const read = (version: number) =>
    pub.readContract({
      address: chain.addresses.datanetRegistry,
      abi,
      functionName: 'versionRoot',
      args: [id, version]
    })
  assert.equal([await read(1), await read(2)], [v1.root, v2.root])

  const proofFile = join(dir, 'proof.json')
  const text = 'the baker sold bread with seeds, and the children waited for the warm rolls'
  const at = await cli(
    'datanet',
    'attribute',
    ...d,
    '--model',
    modelDir,
    '--datanet',
    `${id}@2`,
    '--text',
    text,
    '--out',
    proofFile
  )
  assert.is(at.code, 0, at.err)
  const ok = await cli('datanet', 'verify-proof', proofFile, ...c, '--model', modelDir)
  assert.is(ok.code, 0, ok.out + ok.err)
  assert.match(ok.out, /^OK: 1 span proofs checked against 1 roots/)
  // A proof made against version 1 whose root is swapped for version 2's fails on-chain checking.
  const doc = JSON.parse(readFileSync(proofFile, 'utf8'))
  doc.proof.datanets[0].version = 1
  for (const s of doc.proof.spans) s.version = 1
  writeFileSync(proofFile, JSON.stringify({ proof: doc.proof }))
  const bad = await cli('datanet', 'verify-proof', proofFile, ...c, '--json')
  assert.is(bad.code, 1)
  assert.ok(JSON.parse(bad.out).failures.some((f: { check: string }) => f.check === 'root'))
})

test.run()
