"""What a whole drill on this machine may end in: PASS, or INCONCLUSIVE because the load generator saturated."""

from __future__ import annotations

import json

from drillbit.core.results import Outcome
from drillbit.runner import DrillResult

__all__ = ["passed_or_saturated"]


def passed_or_saturated(result: DrillResult) -> bool:
    """The drill PASSed (exit 0), or the machine was so busy that the load generator saturated
    and the product said INCONCLUSIVE (exit 3) for that reason, as it must: False then, and the
    test says so. Tests assert what the product guarantees, not a figure seen on a quiet machine."""
    assert result.verdicts is not None, result
    load = json.loads((result.run_dir / "load.json").read_text())
    if load.get("saturated"):
        assert result.exit_code == 3 and result.verdicts.outcome is Outcome.INCONCLUSIVE, result.verdicts
        print(f"the generator saturated on this machine ({load.get('reason')}): INCONCLUSIVE, as it must be")
        return False
    assert result.exit_code == 0 and result.verdicts.outcome is Outcome.PASS, result.verdicts
    return True
