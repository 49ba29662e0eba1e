"""Load generation: Locust locustfiles, load profiles, the per-request recorder, and the runner.

The engine imports only ``drillbit.load.profiles``, ``drillbit.load.runner`` (and through it
``drillbit.load.recording`` and ``drillbit.load.cpu``), none of which imports Locust: Locust and its gevent
monkey-patching run in a subprocess of their own. ``drillbit.load.recorder`` and
``drillbit.load.openmodel`` are the Locust side, imported by the locustfiles (trader, marketdata, ping).
"""

__all__: list[str] = []
