// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// @title Huren anchor registry
/// @notice Anchors the Merkle roots (or single fingerprints) of the Huren mutual-recognition platform.
///         It holds only 32-byte digests, counts, batch ids and institution codes: nothing that identifies
///         a person. Compiled with evmVersion "paris" (no PUSH0) so that it also runs on FISCO BCOS and
///         ChainMaker EVMs.
contract HurenAnchor {
    struct Anchor {
        uint64 blockNumber;
        uint64 timestamp;
        uint32 count;
        address submitter;
        bytes32 batchId;
    }

    /// The platform account: registers institutions and may anchor.
    address public owner;
    /// Registered institution accounts → their institution code (non-zero), e.g. a hash of the org identifier.
    mapping(address => bytes32) public institutionOf;
    /// Number of anchors made.
    uint256 public anchorCount;
    mapping(bytes32 => Anchor) private anchors;

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event InstitutionRegistered(address indexed account, bytes32 indexed institution);
    event InstitutionDeregistered(address indexed account, bytes32 indexed institution);
    event Anchored(bytes32 indexed root, uint32 count, bytes32 indexed batchId, address indexed submitter);

    error NotOwner();
    error NotAuthorized(address account);
    error AlreadyAnchored(bytes32 root, uint64 blockNumber);
    error InvalidAnchor();
    error InvalidInstitution();

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    constructor() {
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
    }

    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert InvalidInstitution();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    function register(address account, bytes32 institution) external onlyOwner {
        if (account == address(0) || institution == bytes32(0)) revert InvalidInstitution();
        institutionOf[account] = institution;
        emit InstitutionRegistered(account, institution);
    }

    function deregister(address account) external onlyOwner {
        bytes32 institution = institutionOf[account];
        if (institution == bytes32(0)) revert InvalidInstitution();
        delete institutionOf[account];
        emit InstitutionDeregistered(account, institution);
    }

    function isRegistered(address account) external view returns (bool) {
        return institutionOf[account] != bytes32(0);
    }

    /// Anchors `root` (a Merkle root over `count` records, or one fingerprint with count 1), once.
    function anchor(bytes32 root, uint32 count, bytes32 batchId) external {
        if (msg.sender != owner && institutionOf[msg.sender] == bytes32(0)) revert NotAuthorized(msg.sender);
        if (root == bytes32(0) || count == 0) revert InvalidAnchor();
        uint64 existing = anchors[root].blockNumber;
        if (existing != 0) revert AlreadyAnchored(root, existing);
        anchors[root] = Anchor(uint64(block.number), uint64(block.timestamp), count, msg.sender, batchId);
        anchorCount += 1;
        emit Anchored(root, count, batchId, msg.sender);
    }

    /// Where and when `root` was anchored; blockNumber 0 when it was not.
    function anchorOf(bytes32 root)
        external
        view
        returns (uint64 blockNumber, uint64 timestamp, uint32 count, address submitter, bytes32 batchId)
    {
        Anchor storage a = anchors[root];
        return (a.blockNumber, a.timestamp, a.count, a.submitter, a.batchId);
    }
}
