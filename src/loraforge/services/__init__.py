"""Use cases: one module per resource. Business rules live here, once."""
