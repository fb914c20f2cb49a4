// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Datanets: an owner, a metadata hash and an append-only list of version Merkle roots.
/// @notice datanetId = sha256 of the canonical creation record (docs/INTERFACES.md), computed
/// off-chain; the contract only insists it is new. Versions are numbered from 1 and never change.
/// Creation is commit–reveal (H7): `commit(keccak256(abi.encode(datanetId, owner)))` in an
/// earlier block, then `create`.
contract DatanetRegistry {
    struct Datanet {
        address owner;
        uint32 versions;
        bytes32 metadataHash;
    }

    mapping(bytes32 => Datanet) private datanets;
    mapping(bytes32 => mapping(uint32 => bytes32)) private roots;
    /// keccak256(abi.encode(datanetId, owner)) => the block it was committed in
    mapping(bytes32 => uint256) public commitments;

    event DatanetCreated(bytes32 indexed datanetId, address indexed owner, bytes32 metadataHash);
    event DatanetVersionAppended(bytes32 indexed datanetId, uint32 indexed version, bytes32 root);
    event DatanetMetadataUpdated(bytes32 indexed datanetId, bytes32 metadataHash);
    event DatanetOwnershipTransferred(bytes32 indexed datanetId, address indexed from, address indexed to);

    error DatanetExists(bytes32 datanetId);
    error UnknownDatanet(bytes32 datanetId);
    error NotDatanetOwner(bytes32 datanetId, address caller);
    error UnknownVersion(bytes32 datanetId, uint32 version);
    error ZeroValue();
    /// create needs commit(keccak256(abi.encode(datanetId, msg.sender))) in an earlier block
    error NotCommitted(bytes32 datanetId, address owner);

    /// @notice First step of a creation: the hash of (datanetId, the future owner).
    function commit(bytes32 commitment) external {
        if (commitments[commitment] == 0) commitments[commitment] = block.number;
    }

    function create(bytes32 datanetId, bytes32 metadataHash) external {
        if (datanetId == bytes32(0)) revert ZeroValue();
        if (datanets[datanetId].owner != address(0)) revert DatanetExists(datanetId);
        uint256 at = commitments[keccak256(abi.encode(datanetId, msg.sender))];
        if (at == 0 || at >= block.number) revert NotCommitted(datanetId, msg.sender);
        datanets[datanetId] = Datanet({owner: msg.sender, versions: 0, metadataHash: metadataHash});
        emit DatanetCreated(datanetId, msg.sender, metadataHash);
    }

    /// @return version the number given to this root (1 for the first)
    function appendVersion(bytes32 datanetId, bytes32 root) external returns (uint32 version) {
        Datanet storage d = _owned(datanetId);
        if (root == bytes32(0)) revert ZeroValue();
        version = d.versions + 1;
        d.versions = version;
        roots[datanetId][version] = root;
        emit DatanetVersionAppended(datanetId, version, root);
    }

    function setMetadata(bytes32 datanetId, bytes32 metadataHash) external {
        _owned(datanetId).metadataHash = metadataHash;
        emit DatanetMetadataUpdated(datanetId, metadataHash);
    }

    function transferOwnership(bytes32 datanetId, address newOwner) external {
        Datanet storage d = _owned(datanetId);
        if (newOwner == address(0)) revert ZeroValue();
        d.owner = newOwner;
        emit DatanetOwnershipTransferred(datanetId, msg.sender, newOwner);
    }

    function exists(bytes32 datanetId) external view returns (bool) {
        return datanets[datanetId].owner != address(0);
    }

    function getDatanet(bytes32 datanetId) external view returns (Datanet memory) {
        Datanet memory d = datanets[datanetId];
        if (d.owner == address(0)) revert UnknownDatanet(datanetId);
        return d;
    }

    function versionRoot(bytes32 datanetId, uint32 version) external view returns (bytes32 root) {
        root = roots[datanetId][version];
        if (root == bytes32(0)) revert UnknownVersion(datanetId, version);
    }

    function _owned(bytes32 datanetId) private view returns (Datanet storage d) {
        d = datanets[datanetId];
        if (d.owner == address(0)) revert UnknownDatanet(datanetId);
        if (d.owner != msg.sender) revert NotDatanetOwner(datanetId, msg.sender);
    }
}
