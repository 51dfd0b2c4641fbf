"""jetbridge.partners."""
