"""Targets (drivers) drillbit can exercise: sandbox, kubernetes, aws."""

__all__: list[str] = []
