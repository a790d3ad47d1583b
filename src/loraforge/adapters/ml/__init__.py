"""Diffusers + peft adapters: base-model registry, LoRA trainer, generator, built-in tiny model.

Importing this package (or ``registry``) must stay cheap: torch, diffusers and peft are imported
only inside the functions that train or generate, so the API and CLI start without them.
"""
