// A job through a real node (libp2p on 127.0.0.1, the infer protocol, engine, ORT) whose output
// quotes a datanet contribution: the signed receipt credits that contribution's contributor, and
// the full proof comes with the result and verifies offline against the published root, also
// through the CLI.
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { attributionExtension } from '../../src/attribution/extension.ts'
import { modelTextEncoder } from '../../src/attribution/model-tokenizer.ts'
import { verifyAttribution } from '../../src/attribution/verify.ts'
import type { InferClient } from '../../src/client/client.ts'
import { createClientHost } from '../../src/client/host.ts'
import { requireService } from '../../src/common/service.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { inferExtension } from '../../src/protocols/infer/extension.ts'
import { longestCommonRun } from '../../src/runtime/fixtures/quotable.ts'
import { Tokenizer } from '../../src/runtime/tokenizer.ts'
import { addrOf, type Fixtures, makeFixtures, serving, startNode } from './infer-fixture.ts'

const root = await mkdtemp(join(tmpdir(), 'attribution-job-'))
const BOB = '0x0000000000000000000000000000000000000b0b'
let fx: Fixtures
let node: OpenLoraNode
let client: InferClient
let stopClient: () => Promise<void>

test.before(async () => {
  fx = await makeFixtures(root, 1)
  node = await startNode(root, 'n1', fx, {
    overrides: { extensions: [inferExtension, attributionExtension] }
  })
  ;({ client, stop: stopClient } = await createClientHost())
})
test.after(async () => {
  await stopClient?.()
  await node?.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

test('a job whose output quotes a contribution credits its contributor in the signed receipt', async () => {
  const model = serving(node).models()[0]!.modelId
  const cid = (await serving(node).store()!.import(fx.adapterDirs[0]!)).cid
  const tok = await Tokenizer.fromDir(fx.modelDir)
  const svc = requireService(node.services, 'attribution')
  const job = (promptIds: number[]) =>
    client.infer(addrOf(node), { model, adapter: cid, promptIds, params: { maxNewTokens: 48 } })

  // 1. A first job, before any provenance: the receipt carries only the provenance commitment.
  // Greedy output of a random model is partly invalid UTF-8, so pick a prompt whose output keeps
  // a run of at least 8 tokens through decode → encode (what a datanet stores is text).
  let prompt: number[] = []
  let first: Awaited<ReturnType<typeof job>> | undefined
  for (const p of [
    [1, 17, 42, 99, 7, 3, 250],
    [9, 8, 7, 6, 5],
    [40, 41, 42, 43],
    [100, 200, 300]
  ]) {
    const r = await job(p)
    const back = tok.encode(tok.decode(r.outputIds), { addSpecialTokens: false })
    if (longestCommonRun(r.outputIds, back) >= 8) {
      prompt = p
      first = r
      break
    }
  }
  assert.ok(first, 'one of the prompts gives an output that survives decode → encode for 8+ tokens')
  assert.is(first!.receipt.body.attribution.method, 'provenance')
  assert.equal(first!.receipt.body.attribution.contributors, [])

  // 2. Bob contributes that text to a datanet; the adapter declares it as its training data.
  const dn = await svc.store.createDatanet({ name: 'quotes', owner: BOB })
  await svc.store.contribute(dn.id, {
    text: `Some preface. ${tok.decode(first!.outputIds)} The end.`,
    contributor: BOB
  })
  const v = await svc.store.publish(dn.id)
  await svc.provenance.set(cid, { datanets: [{ id: dn.id, version: 1, bp: 10_000 }] })

  // 3. The same job again (greedy: the same output) is now attributed to Bob by spans.
  const second = await job(prompt)
  assert.equal(second.outputIds, first!.outputIds)
  assert.ok(second.verification?.ok, JSON.stringify(second.verification))
  const a = second.receipt.body.attribution
  assert.is(a.method, 'spans')
  assert.equal(a.contributors, [{ address: BOB, bp: 10_000 }])
  assert.equal(a.datanets, [{ id: dn.id, bp: 10_000 }])

  // 4. The full proof came with the result (the client checked it hashes to the receipt's
  // proofHash), is the one the node kept, and verifies offline with the tokenizer and the root.
  assert.ok(second.attributionProof, 'the result frame carries the proof')
  assert.equal(second.attributionProof, await svc.proofs.get(second.jobId))
  assert.is(first!.attributionProof, undefined, 'a provenance-only job has no span proof to send')
  const { encoder } = await modelTextEncoder(fx.modelDir)
  const res = verifyAttribution(second.attributionProof, [{ datanetId: dn.id, version: 1, root: v.root }], {
    tokenizer: encoder,
    outputIds: second.outputIds,
    summary: a
  })
  assert.equal(res.failures, [])
  assert.ok(res.checked.spans >= 1)
  // a later job reusing that job id (ids are the client's) but attributed by provenance only
  // does not get the stored proof of the earlier one
  const reused = await client.infer(addrOf(node), {
    model,
    jobId: second.jobId,
    promptIds: prompt,
    params: { maxNewTokens: 4 }
  })
  assert.is(reused.receipt.body.attribution.method, 'provenance')
  assert.is(reused.attributionProof, undefined)
  assert.ok(reused.verification?.ok, JSON.stringify(reused.verification))

  // 5. What `openlora infer --out` writes verifies with `openlora verify` and
  // `openlora datanet verify-proof` (against the root given on the command line)
  const file = join(root, 'result.json')
  await writeFile(
    file,
    JSON.stringify({ ...second, receipt: second.receipt, attributionProof: second.attributionProof })
  )
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, ['src/node/cli/main.ts', ...args], {
      encoding: 'utf8',
      env: { ...process.env, OPENLORA_LOG_LEVEL: 'silent' }
    })
  const ok = cli('verify', file)
  assert.is(ok.status, 0, ok.stdout + ok.stderr)
  // the file checked against the published root, span tokens re-checked with the tokenizer
  const verifyProof = () =>
    cli('datanet', 'verify-proof', file, '--root', `${dn.id}@1=${v.root}`, '--model', fx.modelDir, '--json')
  const proofOk = verifyProof()
  assert.is(proofOk.status, 0, proofOk.stdout + proofOk.stderr)
  assert.is(JSON.parse(proofOk.stdout.trim().split('\n').at(-1)!).ok, true)
  // a proof that is not the one the receipt signed fails both, naming what
  const forged = structuredClone(second.attributionProof) as { spans: { outputOffset: number }[] }
  forged.spans[0]!.outputOffset += 1
  await writeFile(file, JSON.stringify({ ...second, attributionProof: forged }))
  const bad = cli('verify', file)
  assert.is(bad.status, 1)
  assert.match(bad.stdout, /attribution\.proofHash/)
  const badProof = verifyProof()
  assert.is(badProof.status, 1)
  const failed = JSON.parse(badProof.stdout.trim().split('\n').at(-1)!) as {
    failures: { check: string; message: string }[]
  }
  // the shifted span now ends past the output: named before any hashing
  assert.equal(
    failed.failures.map((f) => [f.check, /outputOffset/.test(f.message)]),
    [['schema', true]]
  )
})

test.run()
