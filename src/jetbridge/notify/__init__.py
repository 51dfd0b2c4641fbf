"""jetbridge.notify."""
