"""The `newswatch` command line: parses arguments, calls the library, prints results.

No logic lives here. Known failures (a bad config, an unreachable database, a refused
delivery) become one line on stderr and a non-zero exit status:

    1  the command ran and failed (e.g. a digest could not be delivered)
    2  bad usage or a bad configuration
    3  the database is unreachable or unusable
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from newswatch import __version__
from newswatch.config import Config, ConfigError, load_config
from newswatch.malloc import limit_malloc_arenas
from newswatch.startup import claim

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_DATABASE = 3

app = typer.Typer(
    help="Poll news feeds, store each article once, flag watch topics, deliver digests.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
topics_app = typer.Typer(help="Watch topics: list them, try a query.", no_args_is_help=True)
sources_app = typer.Typer(help="Feed sources: OPML import and export.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(sources_app, name="sources")


class _State:
    config_path: str | None = None
    use_prefect: bool = True


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    typer.echo(f"newswatch: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn the library's known failures into one line and an exit status."""
    from digest.smtp import DeliveryError
    from storage.db import DatabaseError

    try:
        yield
    except ConfigError as err:
        fail(f"config error: {err}", EXIT_CONFIG)
    except DatabaseError as err:
        fail(f"database error: {err}", EXIT_DATABASE)
    except DeliveryError as err:
        fail(f"delivery failed: {err}", EXIT_FAILED)
    except OSError as err:
        if err.filename is None:  # not a file the user named: a bug, keep its traceback
            raise
        fail(f"cannot use {err.filename}: {err.strerror}", EXIT_FAILED)


def config() -> Config:
    return load_config(_State.config_path)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"newswatch {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    config_path: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            metavar="PATH",
            help="Config file (default: $NEWSWATCH_CONFIG, else ./newswatch.toml).",
        ),
    ] = None,
    prefect: Annotated[
        bool,
        typer.Option(
            "--prefect/--no-prefect",
            help="Run poll and digest as Prefect flows (the default; shown in the Prefect UI "
            "when PREFECT_API_URL is set) or directly.",
        ),
    ] = True,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            is_eager=True,
            # a callback: click runs the group's own callback only once a command is given
            callback=_print_version,
        ),
    ] = False,
) -> None:
    """Poll news feeds, store each article once, flag watch topics, deliver digests."""
    _State.config_path = config_path
    _State.use_prefect = prefect and os.environ.get("NEWSWATCH_PREFECT", "1") != "0"


@app.command()
def poll(
    all_sources: Annotated[
        bool,
        typer.Option(
            "--all", help="Poll every source now (still honouring Retry-After and gone feeds)."
        ),
    ] = False,
) -> None:
    """Poll every due source once and print a summary."""
    from newswatch.progress import poll_progress
    from newswatch.runs import run_poll

    with one_line_errors():
        cfg = config()
        with poll_progress(enabled=sys.stderr.isatty()) as on_feed:
            report = run_poll(
                cfg, all_sources=all_sources, prefect=_State.use_prefect, on_feed=on_feed
            )
    typer.echo(
        f"{len(report.feeds)} feeds: {report.ok} ok, {report.unchanged} unchanged, "
        f"{report.failed} failed"
        + (f", {report.skipped} skipped (deadline)" if report.skipped else "")
        + f"; {report.new_articles} new articles, {report.duplicates} duplicates skipped, "
        f"{report.new_matches} new matches"
    )
    for feed in report.feeds:
        if feed.status not in ("ok", "unchanged"):
            typer.echo(f"  {feed.name}: {feed.status}: {feed.error}")


@app.command()
def digest(
    name: Annotated[
        str | None, typer.Option("--name", help="Which [[digests]] entry (default: the first).")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="markdown, html, text or email (default: the digest's configured formats).",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", help="Write here instead of the configured directory ('-': stdout)."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Render without sending or marking anything delivered."),
    ] = False,
) -> None:
    """Build the digest of undelivered matches and deliver it."""
    from newswatch.runs import run_digest

    if fmt is not None and fmt not in ("markdown", "html", "text", "email"):
        fail(f"unknown format {fmt!r} (markdown, html, text or email)", EXIT_CONFIG)
    with one_line_errors():
        cfg = config()
        result = run_digest(
            cfg, name=name, fmt=fmt, output=output, dry_run=dry_run, prefect=_State.use_prefect
        )
    # a dry run's digest may be on stdout: keep the report out of it
    to_stderr = dry_run and (output is None or output == "-")
    for line in result.lines():
        typer.echo(line, err=to_stderr)
    if result.failed:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def serve() -> None:
    """Serve the poll and digest deployments on their schedules (Prefect)."""
    from flows.deployments import serve_deployments

    with one_line_errors():
        cfg = config()
        serve_deployments(cfg)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Feed health: last status and error, failures, last success, next poll, articles."""
    from newswatch.runs import feed_health, health_json

    with one_line_errors():
        rows = feed_health(config())
    if as_json:
        typer.echo(json.dumps([health_json(row) for row in rows], indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("feed", "status", "failures", "last success", "next poll", "articles", "error")
    for row in rows:
        table.add_row(
            row.name,
            row.last_status or "never polled",
            str(row.consecutive_failures),
            _when(row.last_success_at),
            "gone" if row.gone else _when(row.next_poll_at),
            str(row.articles),
            (row.last_error or "")[:80],
        )
    Console(width=160).print(table)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", help="Only jsonl for now.")] = "jsonl",
    output: Annotated[
        str | None, typer.Option("--output", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Stored articles, one JSON object per line, with their sources, matches and story."""
    from newswatch.runs import export_articles

    if fmt != "jsonl":
        fail(f"unknown export format {fmt!r} (jsonl)", EXIT_CONFIG)
    with one_line_errors():
        cfg = config()
        if output and output != "-":
            with open(output, "w", encoding="utf-8") as handle:
                count = export_articles(cfg, handle.write)
            typer.echo(f"{count} articles written to {output}", err=True)
        else:
            export_articles(cfg, sys.stdout.write)


@topics_app.command("test")
def topics_test(
    query: Annotated[str, typer.Argument(help="A query, e.g. 'Israel AND Turkey NEAR/5 Syria'.")],
    days: Annotated[
        float, typer.Option(help="Look at articles first seen this many days back.")
    ] = 30,
    limit: Annotated[int, typer.Option(help="Show at most this many matches.")] = 20,
) -> None:
    """Show what QUERY would match among stored articles, with scores and snippets."""
    from newswatch.runs import test_query

    with one_line_errors():
        cfg = config()
        try:
            result = test_query(cfg, query, days=days, limit=limit)
        except ValueError as err:  # watch.query.QueryError
            fail(f"bad query: {err}", EXIT_CONFIG)
    typer.echo(f"{result.total} of {result.scanned} articles match (showing {len(result.shown)}):")
    for hit in result.shown:
        typer.echo(f"\n{hit.score:6.2f}  {hit.title}")
        typer.echo(
            f"        {hit.source} · {hit.published:%Y-%m-%d %H:%M} · terms: {', '.join(hit.terms)}"
        )
        typer.echo(f"        {hit.snippet_marked}")
        if hit.url:
            typer.echo(f"        {hit.url}")


@topics_app.command("list")
def topics_list(
    days: Annotated[float, typer.Option(help="What counts as recent, in days.")] = 7,
) -> None:
    """The configured topics with their total and recent match counts."""
    from newswatch.runs import list_topics

    with one_line_errors():
        rows = list_topics(config(), days=days)
    for row in rows:
        flag = "" if row.active else "  (no longer configured)"
        typer.echo(
            f"{row.name}{flag}: {row.matches_recent} in {days:g} days, {row.matches_total} total"
        )
        typer.echo(f"    {row.query}")


@sources_app.command("import-opml")
def import_opml(file: Annotated[Path, typer.Argument(help="An OPML file.", exists=True)]) -> None:
    """Add the feeds of an OPML file as sources (kept across config syncs)."""
    from newswatch.runs import import_opml as do_import
    from sources.opml import OpmlError

    with one_line_errors():
        try:
            added, total = do_import(config(), file.read_bytes())
        except OpmlError as err:
            fail(f"{file}: {err}", EXIT_CONFIG)
    typer.echo(f"{added} of {total} feeds added")


@sources_app.command("export-opml")
def export_opml(
    output: Annotated[str | None, typer.Option("--output", help="File (default: stdout).")] = None,
) -> None:
    """Every source as OPML."""
    from newswatch.runs import export_opml as do_export

    with one_line_errors():
        data = do_export(config())
        if output and output != "-":
            Path(output).write_bytes(data)
        else:
            sys.stdout.buffer.write(data)


@app.command()
def demo(
    workdir: Annotated[
        Path, typer.Option(help="Where the demo's config, database and digest go.")
    ] = Path("demo-output"),
) -> None:
    """The whole pipeline on bundled sample feeds served from 127.0.0.1, offline."""
    from newswatch.demo import run_demo

    with one_line_errors():
        run_demo(workdir, prefect=_State.use_prefect, echo=typer.echo)


def main(argv: list[str] | None = None) -> None:
    limit_malloc_arenas()  # before any thread starts (see newswatch/malloc.py)
    claim()  # the command's modules are frozen once loaded (see newswatch/startup.py)
    try:
        app(args=argv, prog_name="newswatch")
    finally:
        # The interpreter's last garbage collection walks every object still alive,
        # and after a Prefect poll that is ~0.3 s of Prefect's, pydantic's and
        # SQLAlchemy's objects. The process is ending: what it holds is freed with it.
        gc.freeze()
