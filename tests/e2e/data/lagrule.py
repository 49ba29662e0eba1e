"""The platform's alert rules with ReplicationLagAboveRpo's threshold scaled down, for the data drills'
sandbox: the replication-lag drill then need not wait a minute for the replica to fall 60 s behind.
The shipped 60 s threshold is promtool's to test (infra/monitoring/rules/database_test.yml)."""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["LAG_RPO_S", "scaled_rules"]

#: the RPO the replication-lag drill is run against on the data drills' sandbox (the platform's: 60 s)
LAG_RPO_S = 15
_EXPR = "expr: scope_name:patroni_replication_lag:seconds > {}"


def scaled_rules(source: Path, dest: Path) -> Path:
    """A copy of the rules folder ``source`` at ``dest``, ReplicationLagAboveRpo firing above LAG_RPO_S."""
    shutil.copytree(source, dest)
    rules = dest / "database.yml"
    text = rules.read_text()
    assert text.count(_EXPR.format(60)) == 1, "ReplicationLagAboveRpo's expression changed: update this helper"
    rules.write_text(text.replace(_EXPR.format(60), _EXPR.format(LAG_RPO_S)))
    return dest
