"""Run PostgreSQL (and Patroni, which starts it) as an unprivileged user.

PostgreSQL refuses to start as root. When drillbit itself runs as root, database processes are
started inside a user namespace that maps root to an unprivileged uid (``unshare --user
--map-user``): inside, postgres sees uid 1000 and is content; outside, the files stay owned by
the invoking user, so the root-owned virtualenv and data directories stay usable and no system
user has to be created. As a normal user, commands run unchanged.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

__all__ = ["UnprivilegedUnavailable", "db_command_prefix", "wrap"]

#: uid/gid that root is mapped to inside the namespace (any non-zero id works).
MAPPED_ID = 1000


class UnprivilegedUnavailable(RuntimeError):
    """Running as root and no way to drop to an unprivileged uid was found."""


@functools.cache
def db_command_prefix() -> tuple[str, ...]:
    """The argv prefix that makes a database command run unprivileged (empty when not root)."""
    if os.geteuid() != 0:
        return ()
    unshare = shutil.which("unshare")
    if unshare is None:
        raise UnprivilegedUnavailable(
            "running as root and `unshare` (util-linux) is missing: install util-linux or run drillbit as a normal user"
        )
    prefix = (
        unshare,
        "--user",
        f"--map-user={MAPPED_ID}",
        f"--map-group={MAPPED_ID}",
        "--",
    )
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        raise UnprivilegedUnavailable(
            "running as root and user namespaces are not available "
            f"({probe.stderr.strip() or 'unshare failed'}): enable unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1) or run drillbit as a normal user"
        )
    return prefix


def wrap(argv: list[str]) -> list[str]:
    """Return ``argv`` prefixed so it runs unprivileged when needed."""
    return [*db_command_prefix(), *argv]
