"""`authority audit verify`, `export` and `checkpoint`."""

from __future__ import annotations

from pathlib import Path

import click
from cryptography import x509

from authority.audit.schedule import checkpoint_now
from authority.audit.verification import (
    SealedCheckpoint,
    Verdict,
    export_lines,
    read_export,
    verify_database,
    verify_trail,
)
from authority.bootstrap import pki_for
from authority.cli.base import EXIT_ERROR, cli, command, emit, opened_instance
from authority.errors import InvalidInput
from authority.pki.service import ROOT_NAME, load_certificate

audit_group = click.Group("audit", help="The tamper-evident audit trail.")
cli.add_command(audit_group)


def _pinned_root(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        raise InvalidInput(f"--root {path}: not a PEM certificate") from None


@command(audit_group, "verify")
@click.option(
    "--input",
    "source",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Check this export (JSON lines) instead of the database.",
)
@click.option(
    "--root",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Pin this root CA certificate (PEM); default: the database's root.",
)
@click.option(
    "--checkpoints",
    "kept",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also hold the trail to the checkpoints in this earlier export.",
)
def audit_verify_command(source: Path | None, root: Path | None, kept: Path | None) -> None:
    """Check every entry's hash and link and every checkpoint's seal and time-stamp;
    exit 1 unless the trail is intact."""
    pinned = _pinned_root(root) if root is not None else None
    earlier: list[SealedCheckpoint] = []
    if kept is not None:
        with kept.open(encoding="utf-8") as stream:
            earlier = read_export(stream)[1]
    if source is not None and pinned is not None:
        with source.open(encoding="utf-8") as stream:
            items, sealed = read_export(stream)
        verdict = verify_trail(items, sealed + earlier, pinned)
    else:
        with opened_instance() as instance, instance.database.session() as session:
            anchor = pinned or load_certificate(pki_for(instance, session).ca(ROOT_NAME))
            if source is None:
                verdict = verify_database(session, anchor, earlier)
            else:
                with source.open(encoding="utf-8") as stream:
                    items, sealed = read_export(stream)
                verdict = verify_trail(items, sealed + earlier, anchor)
    emit(verdict.as_dict(), _describe(verdict))
    if not verdict.intact:
        raise click.exceptions.Exit(EXIT_ERROR)


def _describe(verdict: Verdict) -> str:
    if verdict.intact:
        return (
            f"intact: {verdict.entries} entries, {verdict.checkpoints} checkpoints, "
            f"sealed up to entry {verdict.anchored}"
        )
    return f"BROKEN: {verdict.reason}"


@command(audit_group, "export")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
def audit_export_command(output: Path | None) -> None:
    """Write the trail as JSON lines: entries in order, each checkpoint after the
    entry it covers."""
    with opened_instance() as instance, instance.database.session() as session:
        if output is None:
            for line in export_lines(session):
                click.echo(line)
            return
        with output.open("w", encoding="utf-8") as stream:
            for line in export_lines(session):
                stream.write(line + "\n")


@command(audit_group, "checkpoint")
def audit_checkpoint_command() -> None:
    """Seal and time-stamp the current chain head now (if entries were added since the
    last checkpoint)."""
    with opened_instance() as instance:
        checkpoint = checkpoint_now(instance)
    if checkpoint is None:
        emit({"created": False}, "nothing to checkpoint: no entries since the last one")
        return
    emit(
        {
            "created": True,
            "size": checkpoint.size,
            "head": checkpoint.head,
            "at": checkpoint.at.isoformat(),
        },
        f"checkpoint: {checkpoint.size} entries, head {checkpoint.head}",
    )
