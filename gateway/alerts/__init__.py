"""Operating the gateway: suspicious-use detection, the webhook outbox, incident notifications."""
