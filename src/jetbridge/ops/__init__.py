"""jetbridge.ops."""
