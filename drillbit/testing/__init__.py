"""Checking drillbit's own accuracy: a ground-truth HTTP service whose outages are scripted to the
millisecond (``groundtruth``), and measurements of RTO against it (``calibration``). Used by the
test suite and ``benchmarks/accuracy.py``; a team can run them on its own machine the same way."""

__all__: list[str] = []
