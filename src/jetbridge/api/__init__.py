"""jetbridge.api."""
