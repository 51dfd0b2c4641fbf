"""A legacy airport operational database (AODB): its simulator and its change capture."""
