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

from typing import Any

from django.db import connections, router, transaction
from django.db.models import Field, Model
from django.db.models.signals import post_save, pre_save

# (model, database alias) -> (SQL, the fields whose values it takes, the fields it returns)
_statements: dict[tuple[type[Model], str], tuple[str, list[Field], list[Field]]] = {}


def row_insert(obj: Model) -> None:
    """INSERT `obj` as `obj.save(force_insert=True)` would (IntegrityError and all), setting its
    returned primary key and marking it saved."""
    model = type(obj)
    meta = obj._meta
    if pre_save.has_listeners(model) or post_save.has_listeners(model) or meta.order_with_respect_to:
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
    obj._state.adding = False
    obj._state.db = using


def _compile(model: type[Model], connection: Any, *, pk_set: bool) -> tuple[str, list[Field], list[Field]]:
    meta = model._meta
    fields = [f for f in meta.local_concrete_fields if not f.generated and (pk_set or f is not meta.auto_field)]
    returning = list(meta.db_returning_fields)
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    if returning:
        sql += " " + connection.ops.return_insert_columns(returning)[0]
    return sql, fields, returning
