"""Identities, roles and tenants: who is calling, and on whose behalf."""
