"""``hitlgate tick`` and ``hitlgate notifications list|retry``: thin over hitlgate.engine.tick and notify.outbox."""

from __future__ import annotations

import logging

import click

from hitlgate.cli._common import CliState, echo_json, examples, json_option, pass_state
from hitlgate.cli._workflow import open_engine

#: Outbox ids are 32-bit integers in the store: a larger ID is a usage error, not a database overflow.
MAX_ROW_ID = 2**31 - 1


@click.command(epilog=examples("hitlgate tick", "*/1 * * * * hitlgate --config /etc/hitlgate/hitlgate.yaml tick"))
@json_option
@pass_state
def tick(state: CliState) -> None:
    """Run the periodic work once (for cron): expire, remind, escalate, warn, notify.

    Expires what is due, sends the reminders, escalations and expiry
    warnings that are due (reminders: in hitlgate.yaml; each one audit event,
    once per request), turns new audit events into notifications and
    delivers the due ones. Runs under the database lease that `hitlgate
    serve` replicas share, so it does nothing while a serve replica holds it
    (it ticks itself), and releases the lease when done.

    \b
    Exit codes:
      0  done, or another replica holds the lease (--json: "ran": false); also
         when a receiver failed (a later tick retries; `hitlgate
         notifications list --status dead` shows the ones given up)
      1  the store, keys or policy could not be opened or written
      2  bad configuration
    """
    from hitlgate.engine.ledger import lease
    from hitlgate.engine.tick import LEASE_NAME, run_tick_under_lease

    holder = lease.default_holder()
    # The report below lists every failed delivery once; the dispatcher's own
    # warning for each (what `serve` logs) would print it a second time.
    dispatcher_log = logging.getLogger("hitlgate.engine.notify.dispatcher")
    if not state.verbose:
        dispatcher_log.addFilter(_drop)
    try:
        with open_engine(state) as engine:
            try:
                report = run_tick_under_lease(engine, holder)
            finally:
                lease.release(engine.store, LEASE_NAME, holder)
    finally:
        dispatcher_log.removeFilter(_drop)
    if state.json:
        echo_json(report.to_dict())
        return
    click.echo(report.describe())
    for n in report.nudges:
        click.echo(f"  {n.request_id}: {n.kind} -> {', '.join(n.addressees) or '(nobody to address)'}")
    notes = report.notifications
    if notes is not None:
        click.echo(f"notifications: {notes['events']} event(s) read (cursor #{notes['cursor']}), {notes['enqueued']} "
                   f"enqueued, {notes['delivered']} delivered, {notes['retrying']} to retry, {notes['dead']} dead")
        for line in notes["errors"]:
            click.echo(f"  - {line}", err=True)


def _drop(_record: logging.LogRecord) -> bool:
    return False


@click.group(epilog=examples("hitlgate notifications list", "hitlgate notifications list --status dead",
                             "hitlgate notifications show 42", "hitlgate notifications retry 42"))
def notifications() -> None:
    """The notification outbox: what was sent where, what failed, and the dead letters."""


@notifications.command("list", epilog=examples("hitlgate notifications list --status dead --json"))
@click.option("--status", type=click.Choice(["pending", "delivered", "dead"]), help="Only rows in this state.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="At most this many.")
@json_option
@pass_state
def notifications_list(state: CliState, status: str | None, limit: int) -> None:
    """List notifications, newest first: channel, event, status, attempts, last error. Exit code 0."""
    from hitlgate.engine.notify import outbox

    with open_engine(state) as engine:
        rows = outbox.list_rows(engine.store, status=status, limit=limit)
    if state.json:
        echo_json([r.to_dict() for r in rows])
        return
    for r in rows:
        d = r.to_dict()
        error = f"  last error: {r.last_error}" if r.last_error and r.status != "delivered" else ""
        click.echo(f"{r.id:>6}  {r.status:<9} {r.attempts:>2} attempt(s)  {r.channel:<16} {r.event:<18} "
                   f"{r.request_id or '-'}  {d['created_at']}{error}")


@notifications.command("show", epilog=examples("hitlgate notifications show 42",
                                               "hitlgate --json notifications show 42"))
@click.argument("row_id", metavar="ID", type=click.IntRange(1, MAX_ROW_ID))
@json_option
@pass_state
def notifications_show(state: CliState, row_id: int) -> None:
    """Show notification ID and its delivery log (every attempt: time, result, error, duration).

    Exit code 0; 2 when there is no notification ID.
    """
    from hitlgate.engine.notify import outbox

    with open_engine(state) as engine:
        row = outbox.get_row(engine.store, row_id)
        attempts = outbox.attempts_of(engine.store, row_id)
    if state.json:
        echo_json({**row.to_dict(), "deliveries": attempts})
        return
    d = row.to_dict()
    click.echo(f"notification {row.id}: {row.event} to {row.channel} for {row.request_id or '-'}, {row.status} "
               f"after {row.attempts} attempt(s)")
    click.echo(f"  {d['summary']}")
    if row.status == "pending":
        click.echo(f"  next attempt at {d['next_attempt_at']}")
    for i, a in enumerate(attempts, start=1):
        # Numbered by the log, not by the attempt budget, which `notifications retry` starts again at 1.
        again = " (after a retry)" if i > 1 and a["attempt"] == 1 else ""
        click.echo(f"  #{i} {a['at']} {'ok' if a['ok'] else 'FAILED'}{again} ({a['duration_ms']} ms)"
                   + (f": {a['error']}" if a["error"] else ""))


@notifications.command("retry", epilog=examples("hitlgate notifications retry 42"))
@click.argument("row_id", metavar="ID", type=click.IntRange(1, MAX_ROW_ID))
@json_option
@pass_state
def notifications_retry(state: CliState, row_id: int) -> None:
    """Make notification ID due again with a fresh attempt budget (the next tick sends it).

    Exit code 0; 2 when there is no notification ID, or it was already delivered.
    """
    from hitlgate.engine.notify import outbox

    with open_engine(state) as engine:
        row = outbox.retry(engine.store, row_id, engine.now())
    if state.json:
        echo_json(row.to_dict())
    else:
        click.echo(f"notification {row.id} ({row.event} to {row.channel}) is due again; the next tick sends it")


def register(cli: click.Group) -> None:
    """Add ``tick`` (unless the reminders added their own) and ``notifications`` to the root group."""
    cli.commands.setdefault("tick", tick)
    cli.add_command(notifications)
