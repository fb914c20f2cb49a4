// The datanet version roots are meant to be recorded on-chain and checked by contracts: compile
// a small verifier that rebuilds the leaf with abi.encode and calls OpenZeppelin's
// MerkleProof.verify, deploy it on a real anvil, and check our proofs (and that broken ones fail).

import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createPublicClient, createWalletClient, defineChain, type Hex, http } from 'viem'
import { buildMerkleTree, contributionLeaf } from '../../src/attribution/merkle.ts'
import { type LocalChain, startLocalChain } from '../../src/chain/anvil.ts'
import { cidDigest, cidForBytes } from '../../src/crypto/cid.ts'
import { toHex } from '../../src/crypto/hash.ts'

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
test.before(async () => {
  chain = await startLocalChain({ accounts: 1 })
})
test.after(async () => {
  await chain?.stop()
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

test.run()
