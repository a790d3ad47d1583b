"""Runware dialect tests."""
