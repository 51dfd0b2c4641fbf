"""jetbridge: event-driven platform for airlines and airports."""

__version__ = "0.1.0"
