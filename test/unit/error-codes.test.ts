// Errors are told apart by their registered code (and a revert by its decoded custom-error name),
// never by message text. Each test here would fail if a classification went back to reading text
// or to duck-typing a `code` field.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  BaseError,
  ContractFunctionExecutionError,
  ContractFunctionRevertedError,
  encodeErrorResult
} from 'viem'
import { settlementAbi } from '../../src/chain/artifacts/index.ts'
import { ChainCallError, revertArgs, revertName, VoucherRejectedError } from '../../src/chain/errors.ts'
import {
  ERROR_CODES,
  type ErrorCode,
  INFER_WIRE_CODES,
  isErrorCode,
  wireCodeOf
} from '../../src/common/error-codes.ts'
import { codeOf, foreignCode, hasCode, OpenLoraError } from '../../src/common/errors.ts'
import { toInferError } from '../../src/protocols/infer/errors.ts'
import { NoFreeSlotError } from '../../src/runtime/adapters/errors.ts'

test('every registered code has a meaning and an infer wire class; wire classes map to themselves', () => {
  for (const [c, info] of Object.entries(ERROR_CODES)) {
    assert.ok(info.meaning.length > 0, `${c} has no meaning`)
    assert.ok((INFER_WIRE_CODES as readonly string[]).includes(info.wire), `${c} → ${info.wire}`)
  }
  for (const w of INFER_WIRE_CODES) assert.is(wireCodeOf(w), w)
  assert.ok(isErrorCode('UNDERPAID'))
  assert.not.ok(isErrorCode('toString'), 'an Object.prototype key is not a code')
  assert.not.ok(isErrorCode('underpaid'))
})

test('a runtime error reaches the client by its code, whatever its message says', () => {
  const busy = toInferError(new NoFreeSlotError('bafy', 4))
  assert.is(busy.code, 'BUSY')
  assert.is(busy.retryAfterMs, 500)
  // a message that names other codes changes nothing: the code decides
  const refused = toInferError(new VoucherRejectedError('UNDERPAID', 'BAD_SIGNATURE ADAPTER_NOT_FOUND BUSY'))
  assert.is(refused.code, 'PAYMENT_REQUIRED')
  assert.ok(refused.message.startsWith('UNDERPAID: '), refused.message)
})

test('text or a duck-typed `code` field is not a classification: both are INTERNAL', () => {
  assert.is(toInferError(new Error('BUSY: no free slot')).code, 'INTERNAL')
  assert.is(toInferError({ code: 'BUSY', message: 'busy' }).code, 'INTERNAL')
  const errno = Object.assign(new Error('adapter not found'), { code: 'ADAPTER_NOT_FOUND' })
  assert.is(toInferError(errno).code, 'INTERNAL')
  assert.is(codeOf(errno), undefined)
  assert.is(toInferError(new DOMException('x', 'TimeoutError')).code, 'DEADLINE_EXCEEDED')
})

test('hasCode matches only registered codes on OpenLoraError', () => {
  const e = new OpenLoraError('DATANET_BUSY', 'try later')
  assert.ok(hasCode(e, 'DATANET_NOT_FOUND', 'DATANET_BUSY'))
  assert.not.ok(hasCode(e, 'DATANET_NOT_FOUND'))
  assert.not.ok(hasCode({ code: 'DATANET_BUSY' }, 'DATANET_BUSY'))
  const every: ErrorCode[] = Object.keys(ERROR_CODES) as ErrorCode[]
  for (const c of every) assert.is(codeOf(new OpenLoraError(c, 'm')), c)
})

/** A revert as viem raises it from simulateContract/writeContract: decoded from the real ABI. */
function revert(errorName: string, args: readonly unknown[]): ContractFunctionExecutionError {
  const data = encodeErrorResult({ abi: settlementAbi, errorName, args } as Parameters<
    typeof encodeErrorResult
  >[0])
  const reverted = new ContractFunctionRevertedError({ abi: settlementAbi, data, functionName: 'withdraw' })
  return new ContractFunctionExecutionError(reverted, {
    abi: settlementAbi,
    functionName: 'withdraw',
    args: []
  })
}

test('a revert is named from the decoded custom error anywhere in the cause chain', () => {
  const viemErr = revert('WithdrawalLocked', [123n])
  assert.is(revertName(viemErr), 'WithdrawalLocked')
  assert.equal(revertArgs(viemErr), [123n])
  // wrapped once more by viem (as a transport layer does) and then by the chain layer
  const wrapped = new BaseError('call failed', { cause: viemErr })
  const chainErr = new ChainCallError('withdraw', wrapped)
  assert.is(chainErr.revert, 'WithdrawalLocked')
  assert.is(chainErr.code, 'CHAIN_CALL')
})

test('a message naming a custom error is not a revert', () => {
  assert.is(revertName(new Error('execution reverted: WithdrawalLocked(123)')), undefined)
  assert.is(revertName(new BaseError('reverted with WithdrawalLocked')), undefined)
  // a duck-typed `data.errorName` on a plain object is not one either
  assert.is(revertName({ data: { errorName: 'WithdrawalLocked' } }), undefined)
  assert.is(new ChainCallError('withdraw', new Error('WithdrawalLocked')).revert, undefined)
})

test("a foreign error's documented code is read as a code (a real ENOENT), never from its text", async () => {
  const { readFile } = await import('node:fs/promises')
  const enoent = await readFile('/nonexistent/openlora-errlog').catch((e: unknown) => e)
  assert.is(foreignCode(enoent), 'ENOENT')
  assert.is(foreignCode(new Error('ENOENT: no such file')), undefined)
  assert.is(foreignCode({ code: 'ENOENT' }), undefined, 'not an Error')
  assert.is(foreignCode(Object.assign(new Error('x'), { code: 42 })), undefined, 'not a string code')
})

test.run()
