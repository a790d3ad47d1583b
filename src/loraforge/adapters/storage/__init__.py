"""Blob stores: content-addressed bytes."""
