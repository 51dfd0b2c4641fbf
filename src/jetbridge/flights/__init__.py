"""jetbridge.flights."""
