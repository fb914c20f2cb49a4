// The operator binding: the operator's secp256k1 key signs (EIP-191 personal message) a text
// naming the peer id, so anyone — another node, or a contract via ecrecover — can check that
// rewards for this peer's work go to an address that consented to it. A text message (not
// EIP-712) keeps it signable by any wallet; it carries no chain id because it is chain-agnostic.
import { getAddress, type Hex, recoverMessageAddress } from 'viem'
import { fromHex, toHex } from '../../crypto/hash.ts'
import { BINDING_CACHE_SIZE } from './constants.ts'

export function operatorBindingMessage(peerId: string): string {
  return `OpenLoRA operator binding\npeer: ${peerId}`
}

export interface OperatorSigner {
  address: Hex
  signMessage(args: { message: string }): Promise<Hex>
}

export async function signOperatorBinding(signer: OperatorSigner, peerId: string): Promise<Uint8Array> {
  const sig = await signer.signMessage({ message: operatorBindingMessage(peerId) })
  return fromHex(sig)
}

/** Recovers the signer and compares; a bounded cache means each peer's binding is checked once. */
export class BindingVerifier {
  readonly #ok = new Map<string, true>()

  async verify(peerId: string, operator: string, sig: Uint8Array): Promise<boolean> {
    const key = `${peerId}|${operator.toLowerCase()}|${toHex(sig)}`
    if (this.#ok.has(key)) return true
    let recovered: string
    try {
      recovered = await recoverMessageAddress({
        message: operatorBindingMessage(peerId),
        signature: toHex(sig)
      })
    } catch {
      return false
    }
    if (getAddress(recovered) !== getAddress(operator)) return false
    if (this.#ok.size >= BINDING_CACHE_SIZE) this.#ok.delete(this.#ok.keys().next().value!)
    this.#ok.set(key, true)
    return true
  }
}
