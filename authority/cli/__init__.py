"""The `authority` command line (also `python -m authority`).

Every command takes ``--json`` for machine-readable output on stdout. A
failure is one line on stderr and a non-zero exit status: 1 for an error the
user can act on, 2 for a usage error, 70 for an unexpected failure. One
module per area registers its commands on the group in :mod:`authority.cli.base`.
"""

from authority.cli import (  # noqa: F401 - they register commands
    audit,
    identity,
    licences,
    oauth,
    pki,
    setup,
    verify,
)
from authority.cli.base import cli, main

__all__ = ["cli", "main"]
