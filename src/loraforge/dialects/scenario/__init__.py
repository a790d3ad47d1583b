"""Scenario training images (seed 004, scenario-sdk 2.4.0): ``/compat/scenario/v1``."""

from loraforge.dialects.scenario.app import create_app
from loraforge.http.dialect import Dialect

PREFIX = "/compat/scenario/v1"
DIALECT = Dialect(name="scenario", prefix=PREFIX, create_app=create_app)

__all__ = ["DIALECT", "PREFIX", "create_app"]
