// A payment channel's key (client, node, adapter), computed as the Settlement contract does; the
// VoucherStore indexes by it and the voucher checks look channels up by it.
import { type Address, encodeAbiParameters, type Hex, keccak256 } from 'viem'

/** keccak256(abi.encode(client, node, adapterId)), as Settlement.channelKey. */
export function channelKey(client: Address, node: Address, adapterId: Hex): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: 'address' }, { type: 'address' }, { type: 'bytes32' }],
      [client, node, adapterId]
    )
  )
}
