"""drillbit: chaos and resilience testing harness that measures RTO, RPO and latency SLAs."""

__all__ = ["__version__"]

__version__ = "0.1.0"
