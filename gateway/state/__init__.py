"""The in-memory state view each process serves from, and the change feed that keeps it true."""
