"""The tamper-evident audit trail: hash-chained entries anchored by sealed checkpoints.

Other domains call :func:`record` in the unit of work of the change they
make; ``docs/audit.md`` describes the events, the formats and what the trail
guarantees.
"""

from authority.audit.trail import operator, record

__all__ = ["operator", "record"]
