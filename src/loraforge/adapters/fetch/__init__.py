"""Outbound HTTP adapters: SSRF-guarded fetching of user-supplied URLs."""
