"""Signing keys: primitives, the master key that seals them, and the keyring that finds them."""
