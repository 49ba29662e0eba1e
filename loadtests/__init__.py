"""Load generation: Locust locustfiles, load profiles, the per-request recorder, and the runner.

The engine imports only ``loadtests.profiles`` and ``loadtests.runner``, which never import
Locust: Locust (and its gevent monkey-patching) runs in a subprocess of its own.
"""

__all__: list[str] = []
