"""The bottom layer: the run-directory contract (every file name, once), the clock, events, errors,
redaction, safe file I/O, the one YAML loader and the drill project. Imports nothing else of drillbit."""

__all__: list[str] = []
