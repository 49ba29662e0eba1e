"""Probes: samplers that run during a drill and analyzers (pure functions) over what they recorded.

Each analyzer is also a Chaos Toolkit probe function (``probes.<module>.<func>``) reading a run
directory, so experiments can use the numbers in a steady-state hypothesis.
"""

__all__: list[str] = []
