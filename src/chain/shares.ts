// The split of one voucher's increase, exactly as Settlement.claim computes it (per voucher, floor
// division, the node takes the remainder), so the node can report an attribution whose total the
// contract will accept and tests can check balances to the wei.
export const BPS = 10_000n
export const NODE_BPS = 7_000n
export const OWNER_BPS = 1_500n
export const POOL_BPS = 1_000n
export const PROTOCOL_BPS = 500n

export interface Split {
  node: bigint
  owner: bigint
  pool: bigint
  protocol: bigint
}

export function splitPayment(increase: bigint): Split {
  const owner = (increase * OWNER_BPS) / BPS
  const pool = (increase * POOL_BPS) / BPS
  const protocol = (increase * PROTOCOL_BPS) / BPS
  return { node: increase - owner - pool - protocol, owner, pool, protocol }
}
