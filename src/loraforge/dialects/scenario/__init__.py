"""Scenario training images (seed 004, scenario-sdk 2.4.0): ``/compat/scenario/v1``."""

from loraforge.dialects.scenario.app import create_app

PREFIX = "/compat/scenario/v1"

__all__ = ["PREFIX", "create_app"]
