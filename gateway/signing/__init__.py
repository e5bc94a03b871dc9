"""Signed URLs: canonical paths, CDN dialects and profiles, issuing and verifying."""
