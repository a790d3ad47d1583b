"""Implementations of the ports: the only code that imports infrastructure libraries."""
