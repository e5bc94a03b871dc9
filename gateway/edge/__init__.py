"""Edge mode: the state nginx needs to verify native URLs itself, and the redemptions it reports (docs/edge.md)."""
