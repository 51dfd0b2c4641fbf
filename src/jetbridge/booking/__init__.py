"""jetbridge.booking."""
