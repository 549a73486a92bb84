"""The command group, its helpers, and the entry point that turns failures into one line."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from sqlalchemy.exc import InterfaceError, OperationalError

from authority import __version__
from authority.config import load_settings
from authority.db.session import database_unavailable
from authority.errors import AuthorityError
from authority.instance import Instance

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNEXPECTED = 70
JSON_KEY = "authority.json"


def json_option(function: F) -> F:
    """Give a command the ``--json`` flag (stored on the click context)."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.meta[JSON_KEY] = value
        return value

    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        expose_value=False,
        callback=remember,
        is_eager=True,
        help="Print machine-readable JSON on stdout.",
    )(function)


def wants_json() -> bool:
    """Whether the running command was given ``--json``."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(JSON_KEY))


def emit(data: dict[str, Any], text: str) -> None:
    """Print ``data`` as JSON with ``--json``, else the human ``text``."""
    if wants_json():
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        click.echo(text)


@contextmanager
def opened_instance() -> Iterator[Instance]:
    """An instance from the environment's settings, closed afterwards."""
    instance = Instance.open(load_settings())
    try:
        yield instance
    finally:
        instance.close()


def command(group: click.Group, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """Declare a subcommand of ``group`` with ``--json``."""

    def decorate(function: F) -> F:
        wrapped = json_option(function)
        group.command(name, **kwargs)(wrapped)
        return function

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="authority")
def cli() -> None:
    """Authority: identity, electronic seals and licence verification.

    Configured by AUTHORITY_* environment variables (see docs/operations.md).
    """


def _fail(message: str, status: int) -> None:
    click.echo(f"authority: {message}", err=True)
    sys.exit(status)


def main(argv: list[str] | None = None) -> None:
    """Run the command line; turn every failure into one line on stderr."""
    try:
        status = cli.main(args=argv, prog_name="authority", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except click.ClickException as exc:
        _fail(exc.format_message(), EXIT_USAGE)
    except AuthorityError as exc:
        _fail(f"error: {exc.detail}", EXIT_ERROR)
    except (OperationalError, InterfaceError) as exc:
        _fail(f"error: {database_unavailable(exc).detail}", EXIT_ERROR)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # the last resort: never a traceback
        _fail(f"unexpected error: {type(exc).__name__}: {exc}", EXIT_UNEXPECTED)
    # Without standalone mode, click returns a command's `Exit` status instead of exiting.
    if isinstance(status, int) and status:
        sys.exit(status)
