"""PhotoGPT dialect tests."""
