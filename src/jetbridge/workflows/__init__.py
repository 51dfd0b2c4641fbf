"""jetbridge.workflows."""
