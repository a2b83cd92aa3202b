"""``flask --app wsgi sync ...``: run the sync jobs from a shell or a cron line.

``sync segments`` and ``sync profiles`` show a progress bar (rows) on stderr, then a summary:
one line per file and a totals line, then, for each file with refused rows, the first few of them
(``rejected 3 rows of profiles.csv: line 4: ...; line 9: ...``: the rows stored as the run's
rejects, or for a file that failed whole the examples its job kept) and where to read them all
(``sync rejects RUN``, ``GET /api/v1/sync/runs/{id}/rejects``). Exit status 0 when the run
succeeded (rejected rows included), 1 when a file failed or was blocked or the source could not
be reached, with the reason on the last line. ``sync rejects RUN`` prints a run's rejected rows as
CSV; ``sync upload FILE`` puts a file on the Campaign sFTP drop.

``sync provision`` creates pushgate's field groups, schemas, datasets and labels in the Experience
Platform (again safely) and prints each object with what was done; ``sync logs`` exports the
streams (``--stream`` to pick some; ``--force`` within the minimum interval) with a progress bar
and one line per stream: rows, sent, rejected, retried and the watermark. A run the guardrail
refuses exits 1 with, last, when each stream may run again.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup
from tqdm import tqdm

from core.errors import ClientError
from gateway.runtime import runtime
from gateway.spreadsheet import rejects_csv
from store.models import SyncRun
from sync import runs, service
from sync.runs import SyncError
from sync.xdm import STREAMS

sync_cli = AppGroup(
    "sync",
    help="Sync jobs: Platform segments (Azure Blob), profile files (sFTP), uploads, log export to the Platform.",
)

#: Refused rows named per file under a run's summary.
SHOWN_REJECTS = 3

_retry = click.option(
    "--retry-failed", is_flag=True, help="Try again files that failed or were blocked (same name and ETag)."
)


def _run(job: str, options: dict[str, Any]) -> None:
    rt = runtime()
    bar = tqdm(desc=f"{job}", unit=" rows", file=sys.stderr, disable=None, leave=False, dynamic_ncols=True)

    def advance(rows: int) -> None:
        bar.update(rows)

    try:
        run = service.run_now(
            job,
            settings=rt.settings,
            sessions=rt.sessions,
            trigger="cli",
            progress=advance,
            options=options,
        )
    except ClientError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        bar.close()
    _report(run)


def _report(run: SyncRun) -> None:
    if run.job in ("logs", "provision"):
        _report_platform(run)
        return
    summary = run.summary or {}
    for item in summary.get("details", []):
        if item["status"] == "skipped":
            continue
        line = f"{item['status']:8} {item['name']}: {item['rows']} rows, {item['applied']} applied, "
        line += f"{item['rejected']} rejected"
        if item.get("reason"):
            line += f" ({item['reason']})"
        click.echo(line)
    skipped = sum(1 for item in summary.get("details", []) if item["status"] == "skipped")
    click.echo(
        f"run {run.id} {run.status}: {summary.get('files', 0)} files ({summary.get('applied_files', 0)} applied, "
        f"{summary.get('failed_files', 0)} failed, {summary.get('blocked_files', 0)} blocked, {skipped} already "
        f"taken), {summary.get('rows', 0)} rows, {summary.get('applied', 0)} applied, "
        f"{summary.get('rejected', 0)} rejected"
    )
    _report_rejects(run)
    _exit_status(run)


def _report_rejects(run: SyncRun) -> None:
    """For each file (or stream) with refused rows, its first :data:`SHOWN_REJECTS`: those stored
    as the run's rejects, or the examples a file that failed whole kept (its rows were rolled back
    with it); then where the rest are."""
    items = [item for item in (run.summary or {}).get("details", []) if item["status"] != "skipped"]
    stored = False
    with runtime().sessions() as session:
        for item in items:
            rejects = runs.first_rejects(session, run.id, item["name"], SHOWN_REJECTS) if item.get("rejected") else []
            if rejects:
                stored = True
                shown = "; ".join(f"line {reject.line}: {reject.reason}" for reject in rejects)
                more = "; ..." if item["rejected"] > len(rejects) else ""
                click.echo(f"rejected {item['rejected']} rows of {item['name']}: {shown}{more}")
            examples = (item.get("details") or {}).get("examples") if item["status"] == "failed" else None
            if examples:
                click.echo(f"refused rows of {item['name']}: {'; '.join(examples[:SHOWN_REJECTS])}")
    if stored:
        click.echo(
            f"all rejected rows: flask --app wsgi sync rejects {run.id} (CSV) or GET /api/v1/sync/runs/{run.id}/rejects"
        )


def _exit_status(run: SyncRun) -> None:
    if run.status != "succeeded":
        click.echo(f"pushgate: sync {run.job} {run.status}: {run.error}", err=True)
        sys.exit(1)


_WORDS = {"applied": "done", "failed": "failed", "blocked": "blocked", "skipped": "refused"}


def _report_platform(run: SyncRun) -> None:
    """One line per stream of ``logs`` (rows, sent, rejected, retried, watermark) or, for
    ``provision``, one line per object with what was done to it."""
    summary = run.summary or {}
    items = summary.get("details", [])
    for item in items:
        details = item.get("details") or {}
        word = _WORDS.get(item["status"], item["status"])
        if run.job == "provision":
            click.echo(f"{word:8} {item['name']}" + (f" ({item['reason']})" if item.get("reason") else ""))
            for obj in details.get("objects", []):
                click.echo(f"  {obj['action']:8} {obj['kind']} {obj['name']}: {obj['id']}")
            continue
        if item["status"] == "skipped":
            click.echo(f"{word:8} {item['name']}: {item.get('reason')}")
            continue
        if item["name"] == "privacy":  # erasures sent to the Privacy Service, not a stream
            sent, pending = details.get("delete_jobs", 0), details.get("pending", 0)
            line = f"{word:8} privacy: {sent} delete jobs sent, {pending} pending"
            click.echo(line + (f": {item['reason']}" if item.get("reason") else ""))
            continue
        line = f"{word:8} {item['name']}: {item['rows']} rows, {item['applied']} sent, {item['rejected']} rejected, "
        line += f"{details.get('retried', 0)} retried, watermark {details.get('watermark') or '-'}"
        line += f" ({details.get('mode', '?')}{', forced' if details.get('forced') else ''})"
        if item.get("reason"):
            line += f": {item['reason']}"
        if details.get("waiting"):
            line += f"; {details['waiting']} newer rows wait for the next run ({details['waiting_for']}"
            line += f", until {details['waiting_until']})" if details.get("waiting_until") else ")"
        click.echo(line)
    if run.job == "provision":
        changed = sum(item.get("applied", 0) for item in items)
        objects = sum(item.get("rows", 0) for item in items)
        click.echo(f"run {run.id} {run.status}: {len(items)} streams, {objects} objects, {changed} created or updated")
    else:
        streams = [item for item in items if item["name"] != "privacy"]
        click.echo(
            f"run {run.id} {run.status}: {len(streams)} streams, {summary.get('rows', 0)} rows, "
            f"{summary.get('applied', 0)} sent, {summary.get('rejected', 0)} rejected"
        )
        _report_rejects(run)
    _exit_status(run)


@sync_cli.command("segments")
@_retry
def sync_segments(retry_failed: bool) -> None:
    """Import Platform segment exports from Azure Blob into audiences."""
    _run("segments", {"retry_failed": retry_failed})


@sync_cli.command("profiles")
@_retry
def sync_profiles(retry_failed: bool) -> None:
    """Import profile and personalisation files from the sFTP inbox."""
    _run("profiles", {"retry_failed": retry_failed})


_streams = click.option(
    "--stream",
    "streams",
    multiple=True,
    type=click.Choice(STREAMS),
    help="Only this stream (repeat for several); default: the configured streams.",
)


@sync_cli.command("provision")
@_streams
def sync_provision(streams: tuple[str, ...]) -> None:
    """Create pushgate's field groups, schemas and datasets in the Experience Platform (safe to repeat)."""
    _run("provision", {"streams": list(streams) or None})


@sync_cli.command("logs")
@_streams
@click.option(
    "--force", is_flag=True, help="Export even a stream that ran less than PUSHGATE_SYNC_EXPORT_INTERVAL_HOURS ago."
)
def sync_logs(streams: tuple[str, ...], force: bool) -> None:
    """Export broadLog, trackingLog, quarantine and preferences to the Experience Platform."""
    _run("logs", {"streams": list(streams) or None, "force": force})


@sync_cli.command("rejects")
@click.argument("run_id", type=int)
def sync_rejects(run_id: int) -> None:
    """Print the rows run RUN_ID rejected as CSV: file, line, identity, reason."""
    rt = runtime()
    with rt.sessions() as session:
        try:
            runs.get_run(session, run_id)
        except ClientError as exc:
            raise click.ClickException(exc.message) from None
    for chunk in rejects_csv(rt.sessions, run_id):
        click.echo(chunk, nl=False)


@sync_cli.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
def sync_upload(file: Path) -> None:
    """Put FILE onto the Campaign sFTP drop (PUSHGATE_SFTP_UPLOAD_DIR), atomically."""
    from sync.sources.sftp import upload_file

    try:
        remote = upload_file(runtime().settings, file)
    except SyncError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"uploaded {file} to {remote}")
