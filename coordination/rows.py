"""One-row INSERTs with the statement Django writes, compiled once per model instead of per row.

`Model.save(force_insert=True)` compiles its INSERT every time: about three quarters of what an
INSERT costs `task_submit` is that compilation, not the database. `row_insert` writes the same
columns, the same values (each field's `pre_save` and `get_db_prep_save`, so `auto_now_add`, JSON
and UUID columns are what Django would store) and reads back the same RETURNING columns.

It falls back to `save(force_insert=True)` whenever it could differ: a model with pre_save or
post_save receivers, one ordered with respect to another, a value that is an expression, or a
database that cannot return columns from an INSERT.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.db.models import Field, Model
from django.db.models.signals import post_save, pre_save

# (model, database alias) -> (SQL, the fields whose values it takes, the fields it returns)
_statements: dict[tuple[type[Model], str], tuple[str, list[Field], list[Field]]] = {}
# psycopg parses a query (finds its placeholders) on every execute unless it has at most this many
# parameters and bytes, and caches the parse (an LRU of 128 queries) only below that.
# rows_insert_together's statements have 55 (a task, its decision and event) to 65 (and a webhook
# delivery) parameters: without this the parse was about a tenth of task_submit's CPU. The worker's
# finish of a succeeded attempt (coordination.finishes) is one statement of about 4,400 bytes,
# parsed again on every task. The constants are psycopg's (psycopg/_queries.py, read at every
# execute); tests/unit/test_submit_one_statement.py and tests/unit/test_worker_statements.py check
# that the parses are cached. The statements that reach these sizes are the hive's own, a handful.
PSYCOPG_CACHED_PARAMS = 128
PSYCOPG_CACHED_LENGTH = 16384


def _psycopg_parses_once() -> None:
    try:
        from psycopg import _queries
    except ImportError:  # SQLite only
        return
    if getattr(_queries, "MAX_CACHED_STATEMENT_PARAMS", PSYCOPG_CACHED_PARAMS) < PSYCOPG_CACHED_PARAMS:
        _queries.MAX_CACHED_STATEMENT_PARAMS = PSYCOPG_CACHED_PARAMS
    if getattr(_queries, "MAX_CACHED_STATEMENT_LENGTH", PSYCOPG_CACHED_LENGTH) < PSYCOPG_CACHED_LENGTH:
        _queries.MAX_CACHED_STATEMENT_LENGTH = PSYCOPG_CACHED_LENGTH


_psycopg_parses_once()

# (database alias, ((model, key set?), ...), guard) -> (rows_insert_together's SQL, each row's returned fields)
_together: dict[tuple[str, tuple[tuple[type[Model], bool], ...], str], tuple[str, list[list[Field]]]] = {}


def current() -> Any:
    """This thread's default connection itself. `django.db.connection` is a proxy that looks the
    connection up in a thread-local store on every attribute read; the hot statements (claim,
    finish) prepare dozens of values, each of which reads it several times."""
    return connections[DEFAULT_DB_ALIAS]


def hot_cursor(db: Any) -> AbstractContextManager[Any]:
    """A cursor for one of the hive's statements that run for every task (the submit's INSERT, the
    claim, the finish). On PostgreSQL (hive_project.postgresql) it binds its parameters on the
    server and prepares each statement once per connection: planning alone was half of what these
    statements cost the server, and parsing their few kilobytes of SQL with every value spelled
    out came on top. Elsewhere it is Django's cursor. Django's execute wrappers, query log and
    error translation apply to both."""
    preparing = getattr(db, "preparing_cursor", None)
    return preparing() if preparing is not None else db.cursor()


def param(field: Field, connection: Any) -> str:
    """The placeholder of `field`'s value where PostgreSQL cannot take its type from a column (the
    SELECT list of an INSERT … SELECT): bound on the server, an untyped value there would be text.
    Cast to the column's type without its length or precision, so that a value too long still
    fails the INSERT (a cast to varchar(n) would cut it)."""
    if connection.vendor != "postgresql":
        return "%s"
    db_type = field.db_type(connection)
    return f"%s::{re.sub(r'[(].*[)]', '', db_type).strip()}" if db_type else "%s"


def saves_silently(*models: type[Model]) -> bool:
    """Whether no pre_save or post_save receiver listens to any of `models`: only then may their
    rows be written by SQL of our own (which sends no signal) instead of `save()`."""
    return not any(signal.has_listeners(model) for signal in (pre_save, post_save) for model in models)


def mark_saved(obj: Model, using: str) -> None:
    """What `save()` records on a row it has just inserted."""
    obj._state.adding = False
    obj._state.db = using


def saved_values(fields: list[Field], obj: Model, connection: Any) -> list[Any]:
    """The values `obj.save()` would store in these fields (each field's pre_save: auto_now_add and
    all), prepared for `connection`."""
    return [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]


def row_insert(obj: Model) -> None:
    """INSERT `obj` as `obj.save(force_insert=True)` would (IntegrityError and all), setting its
    returned primary key and marking it saved."""
    model = type(obj)
    meta = obj._meta
    if not saves_silently(model) or meta.order_with_respect_to:
        obj.save(force_insert=True)
        return
    using = router.db_for_write(model, instance=obj)
    connection = connections[using]
    if not connection.features.can_return_columns_from_insert:
        obj.save(force_insert=True)
        return
    if obj.pk is None and meta.pk is not meta.auto_field:
        obj.pk = meta.pk.get_pk_value_on_save(obj)
    pk_set = obj.pk is not None
    key = (model, using) if not pk_set or meta.auto_field is None else (model, f"{using}+pk")
    statement = _statements.get(key)
    if statement is None:
        statement = _statements[key] = _compile(model, connection, pk_set=pk_set)
    sql, fields, returning = statement
    values = [field.pre_save(obj, True) for field in fields]
    if any(hasattr(value, "resolve_expression") for value in values):
        obj.save(force_insert=True)
        return
    params: list[Any] = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values, strict=True)]
    with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone() if returning else None
    if row is not None:
        for field, value in zip(returning, row, strict=True):
            setattr(obj, field.attname, value)
    mark_saved(obj, using)


def _compile(model: type[Model], connection: Any, *, pk_set: bool) -> tuple[str, list[Field], list[Field]]:
    meta = model._meta
    fields = _inserted_fields(model, pk_set=pk_set)
    returning = list(meta.db_returning_fields)
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    if returning:
        sql += " " + connection.ops.return_insert_columns(returning)[0]
    return sql, fields, returning


def _inserted_fields(model: type[Model], *, pk_set: bool) -> list[Field]:
    """The columns Django's INSERT writes: every stored one, the automatic key only when it is set."""
    meta = model._meta
    return [f for f in meta.local_concrete_fields if not f.generated and (pk_set or f is not meta.auto_field)]


def rows_insert_together(rows: list[Model], *, guard: str = "", guard_params: tuple[Any, ...] = ()) -> bool | None:
    """INSERT `rows` in ONE statement on PostgreSQL (one round trip, and in autocommit one
    transaction: all of them or none), each as `row_insert` would, the first only WHERE `guard`
    (SQL over the database, may be "") holds and no unique constraint refuses it (ON CONFLICT DO
    NOTHING), the others only if the first went in.

    True: all stored (returned columns set, rows marked saved). False: none stored (the guard did
    not hold or a unique key is taken; the caller decides what that means). None: not possible
    here (not PostgreSQL, signal receivers, an expression value); nothing was sent.

    A data-modifying WITH runs every part to completion whether or not the final SELECT reads it,
    and all parts see one snapshot. Django's foreign keys on PostgreSQL are DEFERRABLE INITIALLY
    DEFERRED, so the later rows may reference the first.
    """
    if not rows:
        return None
    models = [type(row) for row in rows]
    using = router.db_for_write(models[0], instance=rows[0])
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    for model, row in zip(models, rows, strict=True):
        meta = row._meta
        if not saves_silently(model) or meta.order_with_respect_to:
            return None
        if router.db_for_write(model, instance=row) != using:
            return None
    params: list[Any] = []
    shapes: list[tuple[type[Model], bool]] = []
    for index, row in enumerate(rows):
        meta = row._meta
        if row.pk is None and meta.pk is not meta.auto_field:
            row.pk = meta.pk.get_pk_value_on_save(row)
        pk_set = row.pk is not None
        fields = _inserted_fields(type(row), pk_set=pk_set)
        values = [field.pre_save(row, True) for field in fields]
        if any(hasattr(value, "resolve_expression") for value in values):
            return None
        params.extend(field.get_db_prep_save(value, connection) for field, value in zip(fields, values, strict=True))
        if index == 0:
            params.extend(guard_params)
        shapes.append((type(row), pk_set))
    key = (using, tuple(shapes), guard)
    together = _together.get(key)
    if together is None:
        together = _together[key] = _compile_together(shapes, connection, guard=guard)
    sql, returned_fields = together
    returned = list(zip(rows, returned_fields, strict=True))
    with transaction.mark_for_rollback_on_error(using), hot_cursor(connection) as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchone()
    if found is None:
        return False
    values_back = iter(found)
    for row, fields in returned:
        for field in fields:
            setattr(row, field.attname, next(values_back))
        mark_saved(row, using)
    return True


def _compile_together(
    shapes: list[tuple[type[Model], bool]], connection: Any, *, guard: str
) -> tuple[str, list[list[Field]]]:
    """rows_insert_together's statement for rows of these models (and whether each has its key
    set), and the fields each row gets back."""
    quote = connection.ops.quote_name
    parts: list[str] = []
    returned: list[list[Field]] = []
    for index, (model, pk_set) in enumerate(shapes):
        meta = model._meta
        fields = _inserted_fields(model, pk_set=pk_set)
        returning = list(meta.db_returning_fields) or [meta.pk]
        columns = ", ".join(quote(_column(f)) for f in fields)
        placeholders = ", ".join(param(f, connection) for f in fields)
        back = ", ".join(quote(_column(f)) for f in returning)
        if index == 0:
            where = f" WHERE {guard}" if guard else ""
            statement = f"INSERT INTO {quote(meta.db_table)} ({columns}) SELECT {placeholders}{where} ON CONFLICT DO NOTHING RETURNING {back}"
        else:
            statement = f"INSERT INTO {quote(meta.db_table)} ({columns}) SELECT {placeholders} FROM r0 RETURNING {back}"
        parts.append(f"r{index} AS ({statement})")
        returned.append(returning)
    selected = ", ".join(f"r{index}.{quote(_column(f))}" for index, fields in enumerate(returned) for f in fields)
    sql = f"WITH {', '.join(parts)} SELECT {selected} FROM {', '.join(f'r{i}' for i in range(len(shapes)))}"
    return sql, returned


def _column(field: Field) -> str:
    """A concrete field's column (Django types it optional: a field not yet bound to a model has none)."""
    if field.column is None:
        raise ValueError(f"{field} has no column")
    return field.column
