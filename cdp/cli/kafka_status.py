"""``cdp kafka status``: are the workers there, and how far behind are they?

Shows the workers' consumer group ``{prefix}{app_id}`` (``cdp.cdp-worker``):
its state, its members (client id, host, assigned partitions) and, for every
partition of the input log and of ``events.by-customer``, the committed
offset, the end and the lag (``cdp.adapters.kafka.groups``). Exits 1 when the
group has no member or the total lag exceeds ``--max-lag``, so a cron job or
an alert can run it. The Parquet archiver uses no consumer group (its
position is its manifest): ``cdp archive status`` shows it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cdp.cli._app import console, errors, opts_of, print_json, table
from cdp.cli._defaults import KAFKA_DEFAULT_APP_ID
from cdp.cli.kafka import AppId, Bootstrap, InputPrefix, Prefix, kafka_app

if TYPE_CHECKING:
    from cdp.adapters.kafka.groups import GroupStatus


def verdict(status: GroupStatus, max_lag: int | None) -> list[str]:
    """Why the status fails (empty: it passes)."""
    problems = []
    if not status.members:
        problems.append(f"group {status.group} has no members: no worker is running")
    if max_lag is not None and status.lag() > max_lag:
        problems.append(f"lag {status.lag()} exceeds --max-lag {max_lag}")
    return problems


def _show(status: GroupStatus) -> None:
    age = status.oldest_age()
    console.print(
        f"group [bold]{status.group}[/]: {status.state}, {len(status.members)} member(s), "
        f"lag {status.lag()}"
        + (f", oldest unprocessed event {age:.1f} s old" if age is not None else ""),
        highlight=False,
    )
    if status.members:
        rows = [
            (
                m.client_id,
                m.host,
                m.instance_id,
                "(not reported by this broker)"
                if m.assignment is None
                else ", ".join(f"{t}[{p}]" for t, p in m.assignment),
            )
            for m in status.members
        ]
        console.print(table("members", ["client id", "host", "instance", "assignment"], rows))
    lags = [(p.topic, p.partition, p.committed, p.end, p.lag) for p in status.partitions]
    console.print(table("partitions", ["topic", "partition", "committed", "end", "lag"], lags))


@kafka_app.command("status")
def status_command(
    ctx: typer.Context,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
    input_prefix: InputPrefix = None,
    app_id: AppId = KAFKA_DEFAULT_APP_ID,
    max_lag: Annotated[
        int | None,
        typer.Option(min=0, help="Exit 1 when the workers' total lag exceeds this many records."),
    ] = None,
) -> None:
    """The workers' consumer group PREFIX+APP_ID: members, assignments and lag per partition.

    Exits 1 when the group has no member or the lag exceeds --max-lag."""
    from cdp.adapters.kafka.groups import GroupReader  # noqa: PLC0415
    from cdp.adapters.kafka.topics import (  # noqa: PLC0415
        EVENTS_BY_CUSTOMER,
        LOG,
        KafkaSettings,
        group_id,
    )

    opts = opts_of(ctx)
    with errors():
        kafka = KafkaSettings.resolve(bootstrap, prefix, input_prefix=input_prefix)
        reader = GroupReader(kafka.bootstrap)
        try:
            status = reader.status(
                group_id(kafka.prefix, app_id), [kafka.topic(LOG), kafka.topic(EVENTS_BY_CUSTOMER)]
            )
        finally:
            reader.close()
    problems = verdict(status, max_lag)
    if opts.json:
        print_json({"ok": not problems, "problems": problems, **status.as_dict()})
    else:
        _show(status)
        for problem in problems:
            console.print(f"[red]✗[/] {problem}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
