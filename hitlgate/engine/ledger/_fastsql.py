"""The store's constant statements, sent on the driver's cursor without SQLAlchemy's per-execution machinery.

An approval flow sends about 41 statements (32 on PostgreSQL), most of them in write
transactions, where every writer waits for the one inside. (On PostgreSQL a
write's first statements, the lock and the reads that follow it, go in one
round trip: :func:`execute_together`.) For each,
``Connection.execute`` builds an execution context, looks the compiled
statement up in its cache, processes the parameters and wraps the cursor
in a result: measured on SQLite, 48 µs for a primary-key SELECT whose
driver call takes 5 µs. A :class:`Prepared` statement is compiled by
SQLAlchemy once per dialect (and, for an INSERT, per set of columns), and
then each execution only orders the parameters, runs the column types'
bind processors (a time becomes its stored text, as before) and the result
columns' processors, and hands the SQL, on one cursor kept per driver
connection (a cursor an error went through is dropped), to
``Connection._cursor_execute``:
SQLAlchemy's own path for statements it sends itself, which fires the
engine's ``before_cursor_execute`` / ``after_cursor_execute`` events (the
tests that watch statements, and the benchmark that counts them, see these
as any other), logs under ``echo``, and turns a driver error into
SQLAlchemy's exception (an ``IntegrityError`` stays one; a dropped
connection is invalidated).

It runs only inside a transaction SQLAlchemy began (every statement of the
store is: :func:`~hitlgate.engine.ledger.store.transaction`); outside one,
or should a future SQLAlchemy lack the private ``_cursor_execute``, the
statement goes through ``Connection.execute`` as before. A statement with
an expanding parameter (``IN``) is refused when it is wrapped.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler

#: Where a pooled connection keeps the one cursor its prepared statements run on (``info`` lives as long as
#: the driver's connection: a connection replaced after a disconnect starts without it).
_CURSOR = "hitlgate_prepared_cursor"
#: Whether this SQLAlchemy has the path this module sends statements on.
_HAS_CURSOR_EXECUTE = callable(getattr(Connection, "_cursor_execute", None))


@dataclass(frozen=True)
class _Plan:
    """A statement compiled for one dialect: SQL text, how to order the parameters, what to convert."""

    sql: str
    #: Bind names in the order the SQL takes them (positional), or in any order (named).
    names: tuple[str, ...]
    positional: bool
    #: Values of the binds the statement itself holds (``id == 1``), by name.
    fixed: Mapping[str, Any]
    #: Bind processors by name (only the binds whose type has one).
    bind: Mapping[str, Callable[[Any], Any]]
    #: The result's column keys (empty: the statement returns no rows).
    keys: tuple[str, ...]
    #: The result columns' processors, by position (None: the value as the driver gives it); None when no
    #: column has one.
    result: tuple[Callable[[Any], Any] | None, ...] | None

    def rows(self, fetched: list[Any], rowcount: int) -> Rows:
        """The driver's rows of one execution, each column through its result processor."""
        processors = self.result
        if processors is None:
            rows = [tuple(row) for row in fetched]
        else:
            rows = [tuple(v if p is None else p(v) for p, v in zip(processors, row, strict=True)) for row in fetched]
        return Rows(self.keys, rows, rowcount)


def _fetch(conn: Connection, plan: _Plan, parameters: Any, cursor: Any) -> tuple[list[Any], int]:
    """The rows (only a SELECT returns any) and the row count of the statement just run on ``cursor``."""
    try:
        # The driver decodes the rows here (a byte that is not UTF-8, a value out of range, a dropped
        # connection): its error goes where an error of the statement itself goes. Asking the cursor for its
        # description builds it, column by column, so only a SELECT is asked for rows.
        return (cursor.fetchall() if plan.keys else []), cursor.rowcount
    except Exception as exc:  # noqa: BLE001 - as above.
        conn._handle_dbapi_exception(exc, plan.sql, parameters, cursor, None)


class Fetched:
    """One statement's answer as the driver gave it; :meth:`rows` decodes it (each column through its processor)."""

    __slots__ = ("_plan", "_fetched", "_rowcount", "_ready")

    def __init__(self, plan: _Plan | None, fetched: list[Any], rowcount: int, ready: Any = None) -> None:
        self._plan = plan
        self._fetched = fetched
        self._rowcount = rowcount
        self._ready = ready

    def rows(self) -> Any:
        """The decoded rows (a :class:`Rows`, or ``Connection.execute``'s result when the statement went that way)."""
        if self._plan is None:
            return self._ready
        return self._plan.rows(self._fetched, self._rowcount)


class Rows:
    """The rows of one execution, fetched whole (the store's statements return a handful)."""

    __slots__ = ("_keys", "_rows", "rowcount")

    def __init__(self, keys: tuple[str, ...], rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._keys = keys
        self._rows = rows
        #: The driver's count of rows the statement changed.
        self.rowcount = rowcount

    def first(self) -> tuple[Any, ...] | None:
        """The first row, or None."""
        return self._rows[0] if self._rows else None

    def all(self) -> list[tuple[Any, ...]]:
        """Every row."""
        return list(self._rows)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._rows)

    def mappings(self) -> _Mappings:
        """The rows as dicts keyed by column key (as ``Result.mappings()``)."""
        return _Mappings(self._keys, self._rows)


class _Mappings:
    __slots__ = ("_keys", "_rows")

    def __init__(self, keys: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        self._keys = keys
        self._rows = rows

    def first(self) -> dict[str, Any] | None:
        # A row has a value per key (both come from the one SELECT): any `strict` gives the same dict.
        return dict(zip(self._keys, self._rows[0], strict=True)) if self._rows else None  # pragma: no mutate

    def all(self) -> list[dict[str, Any]]:
        return [dict(zip(self._keys, row, strict=True)) for row in self._rows]  # pragma: no mutate - as first()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.all())


class Prepared:
    """A constant Core statement (or ``sa.text``) executed as described in the module docstring."""

    __slots__ = ("statement", "_plans")

    def __init__(self, statement: sa.ClauseElement) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, str, frozenset[str] | None], _Plan] = {}
        # Refuse now what _plan cannot send, rather than at the first execution.
        for bind in statement._get_embedded_bindparams():
            if bind.expanding:
                raise TypeError(f"a prepared statement cannot hold an expanding parameter ({bind.key})")

    def execute(self, conn: Connection, params: Mapping[str, Any] | None = None, *, alone: bool = False) -> Any:
        """Run the statement in ``conn``'s transaction; a :class:`Rows` (``Connection.execute``'s result outside one).

        ``alone``: the statement is the connection's only one, run in the
        driver's own transaction (SQLite's implicit one; PostgreSQL under
        ``AUTOCOMMIT``), as ``Store.read_first`` runs it.
        """
        if not _HAS_CURSOR_EXECUTE or not (alone or conn.in_transaction()):
            return conn.execute(self.statement, params)  # type: ignore[call-overload]
        plan, parameters = self._bound(conn, params)
        pooled = conn.connection
        cursor = pooled.info.get(_CURSOR)
        if cursor is None:
            try:
                cursor = pooled.info[_CURSOR] = pooled.dbapi_connection.cursor()  # type: ignore[union-attr]
            except Exception as exc:  # noqa: BLE001 - handed to SQLAlchemy, which wraps or re-raises it.
                conn._handle_dbapi_exception(exc, plan.sql, parameters, None, None)
        try:
            conn._cursor_execute(cursor, plan.sql, parameters)
            fetched, rowcount = _fetch(conn, plan, parameters, cursor)
        except BaseException:
            # A cursor an error went through is not used again.
            pooled.info.pop(_CURSOR, None)
            with contextlib.suppress(Exception):
                cursor.close()
            raise
        return plan.rows(fetched, rowcount)

    def _bound(self, conn: Connection, params: Mapping[str, Any] | None) -> tuple[_Plan, Any]:
        """The statement's plan for ``conn``'s dialect and ``params`` as the driver takes them."""
        given = params or {}
        dialect = conn.dialect
        # Only an INSERT's SQL depends on the columns given (equivalent if mutated to key every statement's
        # plans by them: more plans, the same SQL).
        columns = frozenset(given) if isinstance(self.statement, sa.Insert) else None  # pragma: no mutate
        # A plan recompiled every time is the same plan, only slower: equivalent if the lookup is mutated.
        plan = self._plans.get((dialect.name, dialect.driver, columns))  # pragma: no mutate
        if plan is None:
            plan = self._plans[(dialect.name, dialect.driver, columns)] = self._plan(dialect, columns)
        values = {**plan.fixed, **given} if plan.fixed else given  # pragma: no mutate - the copy only when needed
        bind = plan.bind
        try:
            ordered = [bind[name](values[name]) if name in bind else values[name] for name in plan.names]
        except KeyError as exc:
            raise sa.exc.ArgumentError(f"a value is required for the parameter {exc.args[0]!r}") from None
        except Exception as exc:
            # A column type refusing a value (a naive time): SQLAlchemy's own wrapping of the same refusal.
            raise sa.exc.StatementError(str(exc), plan.sql, dict(given), exc) from exc
        # Named parameters are psycopg's: PostgreSQL only, outside the mutation run (its tests run them).
        parameters: Any = (tuple(ordered) if plan.positional  # pragma: no mutate
                           else dict(zip(plan.names, ordered, strict=True)))  # pragma: no mutate
        return plan, parameters

    def _plan(self, dialect: Dialect, columns: frozenset[str] | None) -> _Plan:
        # column_keys only for an INSERT: a DDL construct's compiler takes no such argument.
        compiled = (self.statement.compile(dialect=dialect, column_keys=sorted(columns)) if columns
                    else self.statement.compile(dialect=dialect))
        if not isinstance(compiled, SQLCompiler):
            raise TypeError(f"not a SQL statement: {type(self.statement).__name__}")
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        if compiled.positional:
            names = tuple(compiled.positiontup or ())
        else:
            names = tuple(by_name)
        fixed: dict[str, Any] = {}
        bind: dict[str, Callable[[Any], Any]] = {}
        for name in names:
            param = by_name[name]
            if not param.required:
                # The statement's own value (`id == 1`, a LIMIT); a value given at execution wins over it.
                fixed[name] = param.effective_value
            # The dialect is passed as SQLAlchemy passes it; the store's column types do not read it
            # (equivalent if mutated).
            processor = param.type.dialect_impl(dialect).bind_processor(dialect)  # pragma: no mutate
            if processor is not None:
                bind[name] = processor
        keys: tuple[str, ...] = ()
        result: tuple[Callable[[Any], Any] | None, ...] = ()
        if isinstance(self.statement, sa.Select):
            selected = self.statement.selected_columns
            keys = tuple(selected.keys())
            # As the bind processors above: equivalent if the dialect argument is mutated.
            result = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None)  # pragma: no mutate
                           for c in selected)
        return _Plan(sql=compiled.string, names=names, positional=bool(compiled.positional), fixed=fixed,
                     bind=bind, keys=keys, result=result if any(p is not None for p in result) else None)


@functools.lru_cache(maxsize=8)
def _pipelines(driver: type) -> bool:
    """Whether connections of this driver class can pipeline statements: psycopg 3 on libpq 14 or later.

    psycopg's binary package brings its own libpq; a psycopg built on an
    older system libpq has the ``pipeline`` method but refuses to enter
    it, so there the statements go one by one.
    """
    try:
        import psycopg
    except ImportError:  # pragma: no cover - PostgreSQL is only reached through psycopg
        return False
    return issubclass(driver, psycopg.Connection) and bool(psycopg.Pipeline.is_supported())


def execute_together(conn: Connection, statements: Sequence[tuple[Prepared, Mapping[str, Any] | None]]
                     ) -> list[Fetched]:
    """Run ``statements`` in order in ``conn``'s transaction, on PostgreSQL in one round trip; their answers.

    On psycopg they are sent as one pipeline: the server still runs each
    as a statement of its own, in order, each with the snapshot it takes
    as it starts (READ COMMITTED), so a read sent after a ``FOR UPDATE``
    sees what the writer it waited for committed. Only the wait for each
    reply before sending the next statement is gone. Elsewhere (SQLite,
    whose statements are calls in this process, or outside a transaction
    SQLAlchemy began) they run one by one through :meth:`Prepared.execute`.
    A pipelined answer is decoded only when its :meth:`Fetched.rows` is
    asked for, so a value that does not decode raises where it is used.

    The first error of any of them is raised as SQLAlchemy raises a
    statement's error, and the statements after it do not run (on
    PostgreSQL the transaction is then aborted, as after any error).
    """
    dbapi: Any = conn.connection.dbapi_connection
    if (conn.dialect.name != "postgresql" or not _pipelines(dbapi.__class__) or not _HAS_CURSOR_EXECUTE
            or not conn.in_transaction()):
        return [Fetched(None, [], 0, prepared.execute(conn, params)) for prepared, params in statements]
    pipeline = dbapi.pipeline
    sent: list[tuple[_Plan, Any, Any]] = []
    try:
        try:
            with pipeline():
                for prepared, params in statements:
                    plan, parameters = prepared._bound(conn, params)
                    cursor = dbapi.cursor()
                    sent.append((plan, parameters, cursor))
                    # In the pipeline this queues the statement; its error, if any, comes as the pipeline ends.
                    conn._cursor_execute(cursor, plan.sql, parameters)
        except sa.exc.SQLAlchemyError:
            raise
        except Exception as exc:  # noqa: BLE001 - the driver's error, handed to SQLAlchemy, which wraps it.
            conn._handle_dbapi_exception(exc, "; ".join(plan.sql for plan, _, _ in sent), None, None, None)
        return [Fetched(plan, *_fetch(conn, plan, parameters, cursor)) for plan, parameters, cursor in sent]
    finally:
        for _, _, cursor in sent:
            with contextlib.suppress(Exception):
                cursor.close()
