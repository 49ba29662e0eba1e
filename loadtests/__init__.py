"""Load generation: Locust locustfiles, load profiles, the per-request recorder, and the runner.

The engine imports only ``loadtests.profiles``, ``loadtests.runner`` (and through it
``loadtests.recording`` and ``loadtests.cpu``), none of which imports Locust: Locust and its gevent
monkey-patching run in a subprocess of their own. ``loadtests.recorder`` and
``loadtests.openmodel`` are the Locust side, imported by the locustfiles (trader, marketdata, ping).
"""

__all__: list[str] = []
