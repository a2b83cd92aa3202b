"""``flask --app wsgi sync ...``: run the sync jobs from a shell or a cron line.

``sync segments`` and ``sync profiles`` show a progress bar (rows) on stderr, then a summary:
one line per file and a totals line. Exit status 0 when the run succeeded (rejected rows
included), 1 when a file failed or was blocked or the source could not be reached, with the
reason on the last line. ``sync upload FILE`` puts a file on the Campaign sFTP drop.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import AppGroup
from tqdm import tqdm

from core.errors import ClientError
from gateway.runtime import runtime
from store.models import SyncRun
from sync import service
from sync.runs import SyncError

sync_cli = AppGroup("sync", help="Sync jobs: Platform segments (Azure Blob), profile files (sFTP), uploads.")

_retry = click.option(
    "--retry-failed", is_flag=True, help="Try again files that failed or were blocked (same name and ETag)."
)


def _run(job: str, retry_failed: bool) -> None:
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
            options={"retry_failed": retry_failed},
        )
    except ClientError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        bar.close()
    _report(run)


def _report(run: SyncRun) -> None:
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
    if summary.get("rejected"):
        click.echo(f"rejected rows: GET /api/v1/sync/runs/{run.id}/rejects")
    if run.status != "succeeded":
        click.echo(f"pushgate: sync {run.job} failed: {run.error}", err=True)
        sys.exit(1)


@sync_cli.command("segments")
@_retry
def sync_segments(retry_failed: bool) -> None:
    """Import Platform segment exports from Azure Blob into audiences."""
    _run("segments", retry_failed)


@sync_cli.command("profiles")
@_retry
def sync_profiles(retry_failed: bool) -> None:
    """Import profile and personalisation files from the sFTP inbox."""
    _run("profiles", retry_failed)


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
