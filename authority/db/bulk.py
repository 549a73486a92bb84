"""Many rows INSERTed with one executemany at the driver, in a session's transaction.

Core's ``session.execute(insert(table), rows)`` spends, per row, more in its
parameter processing (a dictionary per row, compiled-parameter lookups, the
insertmanyvalues batching) than the database spends storing the row. For the
hot bulk writes (a batch's licences, their events, their audit entries),
:func:`insert_rows` compiles the statement once per table, column set and
dialect, applies each column type's own bind processing (the same functions
Core applies: UTC datetimes, JSON, binary), and hands the rows to the driver's
``executemany`` through the session's connection.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Dialect, Table, Update, bindparam, insert, inspect, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

_Processor = Callable[[Any], Any]
_MISSING = object()


@functools.lru_cache(maxsize=64)
def _plan(
    table: Table, names: tuple[str, ...], dialect: Dialect
) -> tuple[str, tuple[str, ...], bool, tuple[tuple[int, _Processor], ...]]:
    """The SQL, the parameter order, whether it is positional, and (index, processor)
    for each parameter whose column type processes its values on ``dialect``."""
    compiled = insert(table).compile(dialect=dialect, column_keys=list(names))
    order = tuple(compiled.positiontup or ()) if compiled.positional else names
    unknown = set(order) - set(names)
    if unknown:  # a column default the caller did not give (none of ours has one)
        raise ValueError(f"insert_rows: no value for {sorted(unknown)} of {table.name}")
    processors = []
    for index, name in enumerate(order):
        column_type = table.c[name].type
        processor = column_type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors.append((index, processor))
    return compiled.string, order, bool(compiled.positional), tuple(processors)


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ``rows`` into ``table`` in ``session``'s transaction, one statement.

    Every row gives a value for the same columns (those of the first row), as it
    would be stored: no column default is applied. Values go through their column
    types' bind processing, as with Core.
    """
    if not rows:
        return
    connection = session.connection()
    sql, order, positional, processors = _plan(table, tuple(rows[0]), connection.dialect)
    # A batch's rows mostly share their timestamps (issued now, valid from now): each
    # distinct datetime is processed once. Keyed with its zone too, so values that are
    # equal as instants but written in different zones are each processed as given.
    processed: dict[tuple[int, datetime, Any], Any] = {}
    prepared: list[Any] = []
    for row in rows:
        values = [row[name] for name in order]
        for index, processor in processors:
            value = values[index]
            if isinstance(value, datetime):
                key = (index, value, value.tzinfo)
                result = processed.get(key, _MISSING)
                if result is _MISSING:
                    result = processed[key] = processor(value)
                values[index] = result
            else:
                values[index] = processor(value)
        prepared.append(tuple(values) if positional else dict(zip(order, values, strict=True)))
    connection.exec_driver_sql(sql, prepared)


def add_written(session: Session, instance: Any) -> None:
    """INSERT a new mapped ``instance`` at once (:func:`insert_rows`) and attach it to
    ``session`` as if it had been loaded: later changes to it in the unit of work are
    flushed as UPDATEs, and nothing is left for a flush to insert.

    For rows written once per request and used afterwards (a login session, a stored
    authorization request): the flush of one new object cost several times the
    INSERT. Every column must have a value on the instance (no default is applied).
    """
    state = inspect(instance)
    mapper, values = state.mapper, state.dict
    row: dict[str, Any] = {}
    for prop in mapper.column_attrs:
        if prop.key not in values:
            raise ValueError(f"add_written: no value for {prop.key} of {mapper.class_.__name__}")
        row[prop.columns[0].name] = values[prop.key]
    insert_rows(session, mapper.local_table, [row])
    make_transient_to_detached(instance)
    session.add(instance)


def spend_statement(table: Table, key: str, unset: Sequence[str], columns: Sequence[str]) -> Update:
    """``UPDATE table SET columns WHERE key = :key AND`` every ``unset`` column ``IS NULL``:
    the statement :func:`spend` runs, built once by its caller."""
    return (
        update(table)
        .where(table.c[key] == bindparam("key"), *(table.c[name].is_(None) for name in unset))
        .values({name: bindparam(f"new_{name}") for name in columns})
    )


def spend(
    session: Session, record: Any, statement: Update, key: Any, values: Mapping[str, Any]
) -> bool:
    """Run ``statement`` (from :func:`spend_statement`) for the row ``key`` with ``values``
    (by column name, which is the attribute name on our models);
    if it changed the row, ``record`` holds ``values`` as stored. False, and nothing
    changed, if the row was already spent: a compare-and-set, and no unit-of-work flush
    (which for one row cost more than the statement)."""
    params = {"key": key, **{f"new_{name}": value for name, value in values.items()}}
    if session.connection().execute(statement, params).rowcount != 1:
        return False
    for name, value in values.items():
        set_committed_value(record, name, value)
    return True
