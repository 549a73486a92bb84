"""Automatic checkpoints: while `authority serve` runs, the chain head is sealed every
``AUTHORITY_AUDIT_CHECKPOINT_SECONDS`` when entries were appended since the last one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from authority.audit.checkpoints import make_checkpoint
from authority.audit.configuration import record_configuration
from authority.audit.models import AuditCheckpoint
from authority.bootstrap import pki_for
from authority.db.base import utcnow
from authority.instance import Instance

log = logging.getLogger("authority.audit")


def checkpoint_now(instance: Instance) -> AuditCheckpoint | None:
    """Seal the current chain head in its own unit of work (None: nothing new to seal)."""
    with instance.database.transaction() as session:
        return make_checkpoint(pki_for(instance, session), utcnow())


async def checkpoint_periodically(instance: Instance, interval: float) -> None:
    """Make a checkpoint every ``interval`` seconds until cancelled; failures are logged
    and retried at the next tick (several workers may run this: the audit lock and the
    head check make extra ones no-ops)."""
    while True:
        await asyncio.sleep(interval)
        try:
            checkpoint = await asyncio.to_thread(checkpoint_now, instance)
        except Exception:
            log.exception("audit checkpoint failed; retrying in %s s", interval)
            continue
        if checkpoint is not None:
            log.info("audit checkpoint: %s entries, head %s", checkpoint.size, checkpoint.head)


def record_configuration_now(instance: Instance) -> None:
    """Record the settings this server starts with, if they changed (``system`` as actor)."""
    with instance.database.transaction() as session:
        changed = record_configuration(session, instance.settings, "system:serve")
    if changed:
        log.info("configuration changed: %s", ", ".join(changed))


async def record_configuration_at_start(instance: Instance) -> None:
    """:func:`record_configuration_now`, never stopping the start-up (a down database
    is the readiness check's to report)."""
    try:
        await asyncio.to_thread(record_configuration_now, instance)
    except Exception:
        log.exception("could not record the configuration in the audit trail")


@asynccontextmanager
async def periodic_checkpoints(instance: Instance, interval: float) -> AsyncIterator[None]:
    """Run :func:`checkpoint_periodically` for the duration of the block (``interval`` 0: not)."""
    task = asyncio.create_task(checkpoint_periodically(instance, interval)) if interval else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
