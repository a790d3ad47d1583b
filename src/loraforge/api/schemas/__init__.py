"""Wire schemas of the native API (seed 003 field names), apart from entities and tables."""
