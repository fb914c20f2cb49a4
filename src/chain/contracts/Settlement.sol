// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {AdapterRegistry} from "./AdapterRegistry.sol";
import {DatanetRegistry} from "./DatanetRegistry.sol";

/// @title Escrow, voucher claims and the split of every payment.
/// @notice Clients deposit OPEN into an escrow per (client, node) and sign EIP-712 vouchers per
/// channel (client, node, adapterId) whose
/// cumulativeAmount is the MOST the channel may be paid in total (clients sign ahead for a job's
/// worst case). The node claims batches of (voucher, amount): `amount` is what the channel really
/// owes in total (its receipts' amountDue), at most the signed maximum; each entry pays the increase
/// of `amount` over what the channel already paid, split node / adapter owner / datanet pool /
/// protocol by fixed shares. The unspent margin stays in the client's escrow.
/// Only the node can spend a (client, node) escrow, and the client takes money out of it only
/// through the withdrawal delay, so a node that saw the balance before serving is always paid
/// (one escrow behind many nodes let a client spend it twice). A claim settles every valid entry
/// and reports each refused one (VoucherRejected: index and reason) instead of reverting, so one
/// client's bad voucher never blocks the rest of a node's batch.
/// Shares are credited to internal balances (one storage write per recipient per claim instead of
/// one token transfer per voucher) and withdrawn by their owners. The datanet pool of a claim is
/// split by the attribution the node reports with it: Merkle sum-tree roots of contributor amounts,
/// whose totals are checked against the pool on-chain; contributors withdraw with proofs.
contract Settlement is EIP712 {
    using SafeERC20 for IERC20;

    uint256 public constant BPS = 10_000;
    uint256 public constant NODE_BPS = 7_000;
    uint256 public constant OWNER_BPS = 1_500;
    uint256 public constant POOL_BPS = 1_000;
    uint256 public constant PROTOCOL_BPS = 500;
    uint256 public constant MAX_ATTRIBUTIONS = 64;
    uint256 public constant MAX_PROOF_DEPTH = 32;

    bytes32 public constant VOUCHER_TYPEHASH =
        keccak256("Voucher(address client,address node,bytes32 adapterId,uint256 cumulativeAmount)");

    IERC20 public immutable token;
    AdapterRegistry public immutable adapterRegistry;
    DatanetRegistry public immutable datanetRegistry;
    address public immutable treasury;
    /// @notice seconds between a client's withdrawal request and the withdrawal, so that vouchers
    /// the client signed before can still be claimed
    uint64 public immutable withdrawalDelay;

    /// the shortest withdrawal delay a deployment may choose: longer than any claim interval a node
    /// allows (nodes claim at least twice per delay), so a withdrawal never outruns a claim (L1)
    uint64 public constant MIN_WITHDRAWAL_DELAY = 1 hours;

    /// refusal reasons of a claim entry (VoucherRejected, and claim's return value); 0 = settled
    uint8 public constant ABOVE_SIGNED_MAXIMUM = 1;
    uint8 public constant INVALID_SIGNATURE = 2;
    uint8 public constant NOT_INCREASING = 3;
    uint8 public constant INSUFFICIENT_ESCROW = 4;
    uint8 public constant UNKNOWN_ADAPTER = 5;

    /// one slot per (client, node): the balance and, when a withdrawal was requested, when it unlocks
    struct Escrow {
        uint128 balance;
        uint64 unlockAt;
    }

    /// a voucher as claimed: the node is msg.sender, and the signature is EIP-2098 compact (r, vs).
    /// `cumulativeAmount` is the signed maximum, `amount` the channel's total the node claims (≤ it)
    struct SignedVoucher {
        address client;
        bytes32 adapterId;
        uint256 cumulativeAmount;
        uint256 amount;
        bytes32 r;
        bytes32 vs;
    }

    struct Attribution {
        bytes32 datanetId;
        bytes32 root;
        uint256 total;
    }

    struct SumNode {
        bytes32 hash;
        uint256 sum;
    }

    /// client => node => escrow
    mapping(address => mapping(address => Escrow)) private escrows;
    /// keccak256(abi.encode(client, node, adapterId)) => cumulative amount already paid (the last
    /// claimed `amount`, never above the channel's highest signed maximum)
    mapping(bytes32 => uint256) public channelClaimed;
    /// internal balances of nodes, adapter owners and the treasury, withdrawn with withdrawCredits
    mapping(address => uint256) public credits;
    /// keccak256(abi.encode(root, total)) per pool: one storage slot per funded datanet pool; the
    /// root, datanet and total are in the PoolFunded event
    mapping(uint256 => bytes32) public poolCommitment;
    uint256 public poolCount;
    mapping(uint256 => mapping(uint256 => uint256)) private leafClaimed;

    event Deposited(address indexed client, address indexed node, address from, uint256 amount, uint256 balance);
    event WithdrawalRequested(address indexed client, address indexed node, uint64 unlockAt);
    event WithdrawalCancelled(address indexed client, address indexed node);
    event Withdrawn(address indexed client, address indexed node, address to, uint256 amount, uint256 balance);
    event VoucherClaimed(
        address indexed client, address indexed node, bytes32 indexed adapterId, uint256 claimed, uint256 paid
    );
    event Claimed(address indexed node, uint256 vouchers, uint256 total, uint256 poolTotal);
    /// a claim entry that was not paid; reason: ABOVE_SIGNED_MAXIMUM … UNKNOWN_ADAPTER
    event VoucherRejected(uint256 index, address indexed client, bytes32 indexed adapterId, uint8 reason);
    /// role: 0 node operator, 1 adapter owner, 2 protocol, 3 unattributed datanet pool (to protocol)
    event Credited(address indexed account, uint8 indexed role, uint256 amount);
    event CreditsWithdrawn(address indexed account, uint256 amount);
    event PoolFunded(uint256 indexed poolId, bytes32 indexed datanetId, address indexed node, bytes32 root, uint256 total);
    event ContributionWithdrawn(uint256 indexed poolId, address indexed account, uint256 index, uint256 amount);

    error AttributionMismatch(uint256 attributed, uint256 pool);
    error BadAttribution(uint256 index, string reason);
    error EmptyClaim();
    error WithdrawalLocked(uint64 unlockAt);
    error AmountTooLarge(uint256 amount, uint256 available);
    error ZeroAmount();
    error InvalidProof();
    error AlreadyWithdrawn(uint256 poolId, uint256 index);
    error UnknownPool(uint256 poolId);
    error WithdrawalDelayTooShort(uint64 delay, uint64 minimum);

    constructor(
        IERC20 token_,
        AdapterRegistry adapterRegistry_,
        DatanetRegistry datanetRegistry_,
        address treasury_,
        uint64 withdrawalDelay_
    ) EIP712("OpenLoRA Settlement", "1") {
        token = token_;
        adapterRegistry = adapterRegistry_;
        datanetRegistry = datanetRegistry_;
        treasury = treasury_;
        if (withdrawalDelay_ < MIN_WITHDRAWAL_DELAY) {
            revert WithdrawalDelayTooShort(withdrawalDelay_, MIN_WITHDRAWAL_DELAY);
        }
        withdrawalDelay = withdrawalDelay_;
    }

    // ---------------------------------------------------------------- clients

    /// @notice Adds to the caller's escrow for jobs at `node` (only that node's claims spend it).
    function deposit(address node, uint256 amount) external {
        _deposit(msg.sender, node, amount);
    }

    function depositFor(address client, address node, uint256 amount) external {
        _deposit(client, node, amount);
    }

    /// @notice approve (EIP-2612) and deposit in one transaction; a permit already used is tolerated
    function depositWithPermit(address node, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
    {
        try IERC20Permit(address(token)).permit(msg.sender, address(this), amount, deadline, v, r, s) {} catch {}
        _deposit(msg.sender, node, amount);
    }

    /// @notice Starts the delay after which the caller may withdraw its escrow at `node`; the node
    /// keeps claiming what it served meanwhile and serves no new job on it.
    function requestWithdrawal(address node) external {
        uint64 unlockAt = uint64(block.timestamp) + withdrawalDelay;
        escrows[msg.sender][node].unlockAt = unlockAt;
        emit WithdrawalRequested(msg.sender, node, unlockAt);
    }

    function cancelWithdrawal(address node) external {
        escrows[msg.sender][node].unlockAt = 0;
        emit WithdrawalCancelled(msg.sender, node);
    }

    function withdraw(address node, uint256 amount, address to) external {
        Escrow storage e = escrows[msg.sender][node];
        uint64 unlockAt = e.unlockAt;
        if (unlockAt == 0 || block.timestamp < unlockAt) revert WithdrawalLocked(unlockAt);
        uint256 balance = e.balance;
        if (amount == 0) revert ZeroAmount();
        if (amount > balance) revert AmountTooLarge(amount, balance);
        e.balance = uint128(balance - amount);
        token.safeTransfer(to, amount);
        emit Withdrawn(msg.sender, node, to, amount, balance - amount);
    }

    function escrowOf(address client, address node) external view returns (uint256 balance, uint64 unlockAt) {
        Escrow memory e = escrows[client][node];
        return (e.balance, e.unlockAt);
    }

    // ---------------------------------------------------------------- nodes

    function channelKey(address client, address node, bytes32 adapterId) public pure returns (bytes32) {
        return keccak256(abi.encode(client, node, adapterId));
    }

    function claimedOf(address client, address node, bytes32 adapterId) external view returns (uint256) {
        return channelClaimed[channelKey(client, node, adapterId)];
    }

    function claimedOfMany(bytes32[] calldata keys) external view returns (uint256[] memory amounts) {
        amounts = new uint256[](keys.length);
        for (uint256 i; i < keys.length; ++i) amounts[i] = channelClaimed[keys[i]];
    }

    function voucherDigest(address client, address node, bytes32 adapterId, uint256 cumulativeAmount)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(VOUCHER_TYPEHASH, client, node, adapterId, cumulativeAmount)));
    }

    /// @notice Pays each valid entry's increase (its `amount` over what the channel already paid)
    /// once; an entry that fails a check is skipped and reported (VoucherRejected, and its reason in
    /// `rejected[index]`; 0 = paid). `amount` must not exceed the voucher's signed maximum.
    /// Sort the batch by adapterId: the owner lookup and credit are done once per run of equal ids.
    /// The attributions must fit the pool share of the entries paid (AttributionMismatch reverts:
    /// simulate first, as the node's Claimer does).
    function claim(SignedVoucher[] calldata vouchers, Attribution[] calldata attributions)
        external
        returns (uint256 total, uint8[] memory rejected)
    {
        if (vouchers.length == 0) revert EmptyClaim();
        address node = msg.sender;
        uint256 ownerRun;
        uint256 owners;
        uint256 pool;
        uint256 protocol;
        bytes32 runAdapter;
        address runOwner;
        uint256 runPool;
        // what each attribution may take: its datanet's declared weight of the pool share of the
        // entries paid for the adapters that declare it (H5)
        uint256[] memory caps = new uint256[](attributions.length);
        bool runSet;
        rejected = new uint8[](vouchers.length);
        for (uint256 i; i < vouchers.length; ++i) {
            SignedVoucher calldata v = vouchers[i];
            address client = v.client;
            bytes32 adapterId = v.adapterId;
            uint256 cumulative = v.amount;
            {
                uint256 maximum = v.cumulativeAmount;
                if (cumulative > maximum) {
                    _reject(rejected, i, client, adapterId, ABOVE_SIGNED_MAXIMUM);
                    continue;
                }
                bytes32 digest = voucherDigest(client, node, adapterId, maximum);
                // OpenZeppelin's ECDSA refuses high-s signatures: the node's check is the same rule
                (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, v.r, v.vs);
                if (err != ECDSA.RecoverError.NoError || signer != client) {
                    _reject(rejected, i, client, adapterId, INVALID_SIGNATURE);
                    continue;
                }
            }
            if (!runSet || adapterId != runAdapter) {
                if (ownerRun != 0) _credit(runOwner, 1, ownerRun);
                if (runPool != 0) _capRun(caps, runAdapter, runPool, attributions);
                runPool = 0;
                ownerRun = 0;
                runAdapter = adapterId;
                runSet = true;
                // no adapter (base model only): the owner's share goes to the protocol
                runOwner = adapterId == bytes32(0) ? treasury : adapterRegistry.ownerOf(adapterId);
            }
            if (runOwner == address(0)) {
                _reject(rejected, i, client, adapterId, UNKNOWN_ADAPTER);
                continue;
            }
            bytes32 key = channelKey(client, node, adapterId);
            uint256 already = channelClaimed[key];
            if (cumulative <= already) {
                _reject(rejected, i, client, adapterId, NOT_INCREASING);
                continue;
            }
            uint256 increase = cumulative - already;
            Escrow storage e = escrows[client][node];
            uint256 balance = e.balance;
            if (increase > balance) {
                _reject(rejected, i, client, adapterId, INSUFFICIENT_ESCROW);
                continue;
            }
            e.balance = uint128(balance - increase);
            channelClaimed[key] = cumulative;
            emit VoucherClaimed(client, node, adapterId, cumulative, increase);

            // shares are computed per voucher so that they do not depend on how vouchers are batched
            uint256 o = (increase * OWNER_BPS) / BPS;
            uint256 p = (increase * POOL_BPS) / BPS;
            uint256 pr = (increase * PROTOCOL_BPS) / BPS;
            ownerRun += o;
            owners += o;
            pool += p;
            runPool += p;
            protocol += pr;
            total += increase;
        }
        if (ownerRun != 0) _credit(runOwner, 1, ownerRun);
        if (runPool != 0) _capRun(caps, runAdapter, runPool, attributions);
        uint256 nodeAmount = total - owners - pool - protocol;
        if (nodeAmount != 0) _credit(node, 0, nodeAmount);
        if (protocol != 0) _credit(treasury, 2, protocol);
        _fundPools(node, pool, attributions, caps);
        emit Claimed(node, vouchers.length, total, pool);
    }

    /// @notice Moves the caller's credited shares (node, adapter owner, treasury) to `to`.
    function withdrawCredits(address to) external returns (uint256 amount) {
        amount = credits[msg.sender];
        if (amount == 0) revert ZeroAmount();
        credits[msg.sender] = 0;
        token.safeTransfer(to, amount);
        emit CreditsWithdrawn(msg.sender, amount);
    }

    // ---------------------------------------------------------------- contributors

    function isContributionWithdrawn(uint256 poolId, uint256 index) external view returns (bool) {
        return leafClaimed[poolId][index >> 8] & (1 << (index & 0xff)) != 0;
    }

    /// @notice Pays `amount` to `account` (anyone may submit it) if (index, account, amount) is a leaf
    /// of the pool's Merkle sum tree. Leaf: (keccak256(abi.encode(account, amount)), amount); parent:
    /// (keccak256(abi.encode(leftHash, leftSum, rightHash, rightSum)), leftSum + rightSum). The proof
    /// must end at the pool's root hash with the pool's total, so the leaves, each paid once, can
    /// never pay more than the pool holds.
    function withdrawContribution(
        uint256 poolId,
        uint256 index,
        address account,
        uint256 amount,
        SumNode[] calldata proof
    ) external {
        bytes32 commitment = poolCommitment[poolId];
        if (commitment == bytes32(0)) revert UnknownPool(poolId);
        if (amount == 0) revert ZeroAmount();
        if (proof.length > MAX_PROOF_DEPTH) revert InvalidProof();
        bytes32 h = keccak256(abi.encode(account, amount));
        uint256 s = amount;
        uint256 idx = index;
        for (uint256 i; i < proof.length; ++i) {
            SumNode calldata sib = proof[i];
            h = idx & 1 == 0
                ? keccak256(abi.encode(h, s, sib.hash, sib.sum))
                : keccak256(abi.encode(sib.hash, sib.sum, h, s));
            s += sib.sum;
            idx >>= 1;
        }
        if (idx != 0 || keccak256(abi.encode(h, s)) != commitment) revert InvalidProof();
        uint256 word = leafClaimed[poolId][index >> 8];
        uint256 bit = 1 << (index & 0xff);
        if (word & bit != 0) revert AlreadyWithdrawn(poolId, index);
        leafClaimed[poolId][index >> 8] = word | bit;
        token.safeTransfer(account, amount);
        emit ContributionWithdrawn(poolId, account, index, amount);
    }

    // ---------------------------------------------------------------- internal

    function _deposit(address client, address node, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        Escrow storage e = escrows[client][node];
        uint256 balance = uint256(e.balance) + amount;
        if (balance > type(uint128).max) revert AmountTooLarge(amount, type(uint128).max - e.balance);
        e.balance = uint128(balance);
        token.safeTransferFrom(msg.sender, address(this), amount);
        emit Deposited(client, node, msg.sender, amount, balance);
    }

    function _reject(uint8[] memory rejected, uint256 i, address client, bytes32 adapterId, uint8 reason) private {
        rejected[i] = reason;
        emit VoucherRejected(i, client, adapterId, reason);
    }

    function _credit(address account, uint8 role, uint256 amount) private {
        credits[account] += amount;
        emit Credited(account, role, amount);
    }

    /// the pool's share goes to the reported datanets (within what the adapters declare); what is
    /// not attributed goes to the protocol
    /// adds one adapter run's pool share to the caps of the attributions of the datanets that the
    /// adapter's registration declares, by their weights (the first attribution of each datanet)
    function _capRun(uint256[] memory caps, bytes32 adapterId, uint256 runPool, Attribution[] calldata attributions)
        private
        view
    {
        if (attributions.length == 0 || adapterId == bytes32(0)) return;
        (, bytes32[] memory datanets, uint16[] memory weights) = adapterRegistry.getAdapter(adapterId);
        for (uint256 d; d < datanets.length; ++d) {
            for (uint256 j; j < attributions.length; ++j) {
                if (attributions[j].datanetId == datanets[d]) {
                    caps[j] += (runPool * weights[d]) / BPS;
                    break;
                }
            }
        }
    }

    function _fundPools(address node, uint256 pool, Attribution[] calldata attributions, uint256[] memory caps)
        private
    {
        if (attributions.length == 0) {
            if (pool != 0) _credit(treasury, 3, pool);
            return;
        }
        if (attributions.length > MAX_ATTRIBUTIONS) revert BadAttribution(MAX_ATTRIBUTIONS, "too many");
        uint256 sum;
        uint256 id = poolCount;
        for (uint256 i; i < attributions.length; ++i) {
            Attribution calldata a = attributions[i];
            if (a.root == bytes32(0) || a.total == 0) revert BadAttribution(i, "zero root or total");
            if (!datanetRegistry.exists(a.datanetId)) revert BadAttribution(i, "unknown datanet");
            // only datanets the paid adapters' registrations declare, up to their declared share
            if (a.total > caps[i]) revert BadAttribution(i, "above the share its adapters declare");
            sum += a.total;
            poolCommitment[id] = keccak256(abi.encode(a.root, a.total));
            emit PoolFunded(id, a.datanetId, node, a.root, a.total);
            ++id;
        }
        // a node may know contributors for only part of its jobs: what it cannot attribute goes to
        // the protocol, never back to the node, and it can never attribute more than the pool
        if (sum > pool) revert AttributionMismatch(sum, pool);
        if (sum < pool) _credit(treasury, 3, pool - sum);
        poolCount = id;
    }
}
