// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Registry of LoRA adapters: who owns each, what it costs, which datanets it was trained on.
/// @notice adapterId = the sha2-256 digest of the adapter manifest CID (docs/INTERFACES.md). A new
/// version is a new adapterId linked to its predecessor; ownership moves only by the owner's call.
/// Registration is commit–reveal (H7, docs/THREATS.md): `commit(keccak256(abi.encode(adapterId,
/// owner)))` in an earlier block, then `register`, so a front-runner who learns the id from a
/// pending registration cannot get its own registration in first.
contract AdapterRegistry {
    struct Adapter {
        address owner;
        // 0 when the adapter is not registered; a registered adapter always has a block number
        uint64 registeredAt;
        bytes32 modelHash;
        bytes32 previous;
        uint256 feePer1kTokens;
    }

    uint16 public constant BPS = 10_000;
    uint256 public constant MAX_DATANETS = 16;

    mapping(bytes32 => Adapter) private adapters;
    mapping(bytes32 => bytes32[]) private provenanceDatanets;
    mapping(bytes32 => uint16[]) private provenanceWeights;
    /// keccak256(abi.encode(adapterId, owner)) => the block it was committed in
    mapping(bytes32 => uint256) public commitments;

    event AdapterRegistered(
        bytes32 indexed adapterId,
        address indexed owner,
        bytes32 indexed modelHash,
        uint256 feePer1kTokens,
        bytes32[] datanets,
        uint16[] weightsBps
    );
    event AdapterVersionPublished(bytes32 indexed previous, bytes32 indexed adapterId, address indexed owner);
    event AdapterFeeUpdated(bytes32 indexed adapterId, uint256 feePer1kTokens);
    event AdapterOwnershipTransferred(bytes32 indexed adapterId, address indexed from, address indexed to);

    error AdapterExists(bytes32 adapterId);
    error UnknownAdapter(bytes32 adapterId);
    error NotAdapterOwner(bytes32 adapterId, address caller);
    error BadProvenance(string reason);
    error ZeroAddress();
    /// register needs commit(keccak256(abi.encode(adapterId, msg.sender))) in an earlier block
    error NotCommitted(bytes32 adapterId, address owner);

    /// @notice First step of a registration: the hash of (adapterId, the future owner).
    function commit(bytes32 commitment) external {
        if (commitments[commitment] == 0) commitments[commitment] = block.number;
    }

    function register(
        bytes32 adapterId,
        bytes32 modelHash,
        uint256 feePer1kTokens,
        bytes32[] calldata datanets,
        uint16[] calldata weightsBps
    ) external {
        _register(adapterId, modelHash, feePer1kTokens, datanets, weightsBps, bytes32(0));
    }

    /// @notice A new version keeps the owner and links back to the version it replaces.
    function publishVersion(
        bytes32 previous,
        bytes32 adapterId,
        bytes32 modelHash,
        uint256 feePer1kTokens,
        bytes32[] calldata datanets,
        uint16[] calldata weightsBps
    ) external {
        _onlyOwner(previous);
        _register(adapterId, modelHash, feePer1kTokens, datanets, weightsBps, previous);
        emit AdapterVersionPublished(previous, adapterId, msg.sender);
    }

    function setFee(bytes32 adapterId, uint256 feePer1kTokens) external {
        _onlyOwner(adapterId);
        adapters[adapterId].feePer1kTokens = feePer1kTokens;
        emit AdapterFeeUpdated(adapterId, feePer1kTokens);
    }

    function transferOwnership(bytes32 adapterId, address newOwner) external {
        _onlyOwner(adapterId);
        if (newOwner == address(0)) revert ZeroAddress();
        adapters[adapterId].owner = newOwner;
        emit AdapterOwnershipTransferred(adapterId, msg.sender, newOwner);
    }

    /// @notice The address that earns the adapter owner's share; zero when not registered.
    function ownerOf(bytes32 adapterId) external view returns (address) {
        return adapters[adapterId].owner;
    }

    function getAdapter(bytes32 adapterId)
        external
        view
        returns (Adapter memory adapter, bytes32[] memory datanets, uint16[] memory weightsBps)
    {
        adapter = adapters[adapterId];
        if (adapter.registeredAt == 0) revert UnknownAdapter(adapterId);
        return (adapter, provenanceDatanets[adapterId], provenanceWeights[adapterId]);
    }

    function _onlyOwner(bytes32 adapterId) private view {
        address owner = adapters[adapterId].owner;
        if (owner == address(0)) revert UnknownAdapter(adapterId);
        if (owner != msg.sender) revert NotAdapterOwner(adapterId, msg.sender);
    }

    function _register(
        bytes32 adapterId,
        bytes32 modelHash,
        uint256 feePer1kTokens,
        bytes32[] calldata datanets,
        uint16[] calldata weightsBps,
        bytes32 previous
    ) private {
        // the zero id means "no adapter" in vouchers and receipts, so it can never be registered
        if (adapterId == bytes32(0)) revert UnknownAdapter(adapterId);
        if (adapters[adapterId].registeredAt != 0) revert AdapterExists(adapterId);
        // every new id, a new version's too, needs its (id, owner) commitment from an earlier block:
        // owning some adapter must not let anyone publish a victim's id as its "next version"
        uint256 at = commitments[keccak256(abi.encode(adapterId, msg.sender))];
        if (at == 0 || at >= block.number) revert NotCommitted(adapterId, msg.sender);
        if (datanets.length != weightsBps.length) revert BadProvenance("datanets and weights differ in length");
        if (datanets.length > MAX_DATANETS) revert BadProvenance("more than 16 datanets");
        if (datanets.length > 0) {
            uint256 sum;
            for (uint256 i; i < weightsBps.length; ++i) sum += weightsBps[i];
            if (sum != BPS) revert BadProvenance("weights must sum to 10000 bps");
        }
        adapters[adapterId] = Adapter({
            owner: msg.sender,
            registeredAt: uint64(block.number),
            modelHash: modelHash,
            previous: previous,
            feePer1kTokens: feePer1kTokens
        });
        provenanceDatanets[adapterId] = datanets;
        provenanceWeights[adapterId] = weightsBps;
        emit AdapterRegistered(adapterId, msg.sender, modelHash, feePer1kTokens, datanets, weightsBps);
    }
}
