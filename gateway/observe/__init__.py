"""Observing the gateway: Prometheus metrics and structured logs."""
