"""Native routers, one module per resource."""
