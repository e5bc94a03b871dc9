"""Who is calling and what they may do: JWTs, identities, the authorization rules."""
