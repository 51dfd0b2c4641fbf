"""jetbridge.storage."""
