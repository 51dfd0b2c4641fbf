"""Payments behind a provider interface; a built-in test provider speaks the same HTTP protocol."""
