"""Request-scoped dependencies: the instance and the unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from authority.instance import Instance


def get_instance(request: Request) -> Instance:
    """The Authority instance this app serves."""
    instance: Instance = request.app.state.instance
    return instance


def _unit_of_work(request: Request) -> Iterator[Session]:
    with get_instance(request).database.transaction() as session:
        yield session


# scope="function": the transaction commits (or rolls back) when the handler
# returns, before the response is sent, so a 2xx is never sent for work that
# then fails to commit.
DbSession = Annotated[Session, Depends(_unit_of_work, scope="function")]
CurrentInstance = Annotated[Instance, Depends(get_instance)]
