"""gatewayctl: a thin command line over the gateway's core."""
