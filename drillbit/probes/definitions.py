"""The platform's own probe definitions (the project's ``probes/trading.yaml``), validated at the edge.

The samplers in this package are generic; the synthetic transaction they send and the table the
heartbeat writes to belong to the platform under test, so a team adapts them in its drill project.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from drillbit.core.project import Project
from drillbit.core.project import current as current_project
from drillbit.core.yamlio import load_model_file

__all__ = ["PROBES_FILE", "Heartbeat", "MarketDataProbe", "ProbeDefinitions", "SyntheticTransaction",
           "load_probe_definitions"]

PROBES_FILE = ("probes", "trading.yaml")


class SyntheticTransaction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    orders_path: str = Field(default="/orders", pattern=r"^/[A-Za-z0-9_./-]*$")
    symbol: str = Field(default="DRILL-AV", pattern=r"^[A-Z0-9.-]{1,16}$")
    price: str = Field(default="0.00000001", pattern=r"^[0-9]+(\.[0-9]+)?$")


class Heartbeat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: str = Field(default="drill_heartbeat", pattern=r"^[a-z_][a-z0-9_]{0,62}$")


class MarketDataProbe(BaseModel):
    """The market-data probe (``drillbit.probes.marketdata``): the trade stream, the trade history a
    reader fills a gap from, and the symbol its own crossing orders trade on (at ``price``)."""

    model_config = ConfigDict(extra="forbid")
    stream_path: str = Field(default="/marketdata/stream", pattern=r"^/[A-Za-z0-9_./-]*$")
    trades_path: str = Field(default="/marketdata/{symbol}/trades",
                             pattern=r"^/[A-Za-z0-9_./-]*\{symbol\}[A-Za-z0-9_./-]*$")  # fmt: skip
    symbol: str = Field(default="DRILL-MD", pattern=r"^[A-Z0-9.-]{1,16}$")
    price: str = Field(default="1", pattern=r"^[0-9]+(\.[0-9]+)?$")


class ProbeDefinitions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    synthetic_transaction: SyntheticTransaction = SyntheticTransaction()
    heartbeat: Heartbeat = Heartbeat()
    marketdata: MarketDataProbe = MarketDataProbe()


def load_probe_definitions(project: Project | None = None) -> ProbeDefinitions:
    """The project's probe definitions (the shipped ones where the project has none)."""
    path = (project or current_project()).find(*PROBES_FILE)
    return load_model_file(path, ProbeDefinitions, missing="no probe definitions: run drill init or restore the file",
                           shape="synthetic_transaction:, heartbeat:, marketdata:")  # fmt: skip
