"""jetbridge.web."""
