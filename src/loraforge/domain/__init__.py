"""Entities, value types and errors. Pure Python: imports nothing else of loraforge."""
