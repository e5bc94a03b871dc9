"""The audit log: records, the Merkle log, checkpoints, export, verification, retention, privacy."""
