"""The benchmark run: newswatch and its peers on the same generated feeds, one process tree.

Starts the loopback feed server (its own process), then for each N runs every
scenario `--reps` times and reports medians:
- cold:    empty database/cache, every feed answers 200 with a body;
- warm:    right after, every feed again; all answer 304 (conditional GET);
- changed: the server switches to the mutated set: 10% of the feeds have new
           entries on top (200), the rest answer 304.
newswatch is run as a user runs it (`uv run newswatch --config <toml> poll`, warm
and changed: `poll --all`, with NEWSWATCH_DATABASE_URL set) on SQLite and on a
throwaway PostgreSQL database; the peers are newsboat (`-x reload`, 10 threads)
and rss2email (`r2e run --no-send`, capped at `--rss2email-max` feeds: it fetches
one feed at a time). A tool whose first "warm" run still gets bodies (newsboat
stores the ETag of a new feed only on its second fetch) gets one unmeasured
priming run, which the row's note records. When newswatch fails, its rows are
skipped with the error as a note and the rest of the run goes on.

Prints a table and writes JSON to `bench/results/<UTC timestamp>.json`.

    uv run --group bench python -m bench.run [--sizes 200,1000] [--reps 3]
        [--backends sqlite,postgresql] [--peers newsboat,rss2email] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench import gen_feeds
from bench.feedserver import host_address
from bench.peers import Measurement, Newsboat, Rss2email, measure

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SCENARIOS = ("cold", "warm", "changed")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TOPICS = {
    "Israel–Turkey Syria deconfliction": (
        "(Israel OR Israeli) AND (Turkey OR Türkiye OR Turkish) AND (Syria OR Syrian) "
        'AND (deconfliction OR coordination OR "military friction")'
    ),
    "Syria reconstruction": "(Syria OR Syrian) AND (reconstruction OR aid)",
    "Gulf energy": '(Qatar OR "Saudi Arabia" OR Oman) AND (oil OR gas OR pipeline)',
    "Kurdish politics": "(Kurdish OR Erbil OR Sulaymaniyah) AND (election OR parliament)",
}


class Tool(Protocol):
    name: str
    log_path: Path  # the last run's output

    def reset(self) -> None: ...
    def run(self, scenario: str) -> Measurement: ...


@dataclass
class Rep:
    """One measured run and what the server saw during it."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    tree_rss_mb: float
    server: dict[str, Any]
    primed: bool = False
    loadavg_1min: float = 0.0  # at the start: the machine is shared, contention shows here


@dataclass
class Row:
    """One scenario × N × tool (× backend), over its repetitions."""

    scenario: str
    n: int
    tool: str
    backend: str
    reps: list[Rep] = field(default_factory=list)
    note: str = ""

    @property
    def walls(self) -> list[float]:
        return [r.wall_s for r in self.reps]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "scenario": self.scenario,
            "n": self.n,
            "tool": self.tool,
            "backend": self.backend,
            "note": self.note,
            "reps": [asdict(r) for r in self.reps],
        }
        if self.reps:
            out |= {
                "median_s": statistics.median(self.walls),
                "min_s": min(self.walls),
                "max_s": max(self.walls),
                "median_cpu_s": statistics.median(r.cpu_s for r in self.reps),
                "peak_rss_mb": max(r.peak_rss_mb for r in self.reps),
                "tree_rss_mb": max(r.tree_rss_mb for r in self.reps),
            }
        return out


class Server:
    """The feed server as a child process, with its admin endpoints."""

    def __init__(self, feed_dir: Path, hosts: int, port: int) -> None:
        cmd = [sys.executable, "-m", "bench.feedserver", "--dir", str(feed_dir)]
        cmd += ["--hosts", str(hosts), "--port", str(port)]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            self.proc.kill()
            raise RuntimeError(f"feed server did not start: {line!r}")
        self.port = port
        self.hosts = hosts

    def url(self, feed: gen_feeds.FeedInfo) -> str:
        return f"http://{host_address(feed.host_index)}:{self.port}{feed.path}"

    def _admin(self, path: str, method: str = "GET") -> bytes:
        req = urllib.request.Request(
            f"http://{host_address(0)}:{self.port}/_admin/{path}", method=method
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            body: bytes = resp.read()
            return body

    def variant(self, name: str) -> None:
        self._admin(f"variant?name={name}", "POST")

    def stats(self) -> dict[str, Any]:
        """Counts since the last call (then reset)."""
        out: dict[str, Any] = json.loads(self._admin("stats?reset=1"))
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class PrefectServer:
    """A Prefect server for the newswatch runs, as a user's deployment has one.

    Its own PREFECT_HOME (database, settings) under the work dir; `env` is what the
    newswatch processes get so they report to it instead of starting a temporary one.
    """

    def __init__(self, work: Path, port: int, timeout: float = 300.0) -> None:
        home = work / "prefect-home"
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        cmd = [str(Path(sys.executable).with_name("prefect")), "server", "start"]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--no-ui"]
        self.log = (work / "prefect-server.log").open("wb")
        self.proc = subprocess.Popen(
            cmd, cwd=work, env=dict(os.environ, **self.env), stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prefect server exited {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.env['PREFECT_API_URL']}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"prefect server not healthy after {timeout:.0f} s")

    def stop(self) -> None:
        # Its session: the server spawns service subprocesses of its own.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


class Newswatch:
    """`newswatch poll` as a user runs it, on one database backend."""

    name = "newswatch"

    def __init__(
        self,
        work: Path,
        urls: Sequence[str],
        backend: str,
        cmd: Sequence[str],
        timeout: float,
        extra_env: dict[str, str],
        prefect: bool = True,
    ) -> None:
        self.extra_env = extra_env
        self.prefect = prefect
        # The same poll without Prefect is its own row: the pair is Prefect's overhead.
        self.name = "newswatch" if prefect else "newswatch-noprefect"
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.backend = backend
        self.cmd = list(cmd)
        self.timeout = timeout
        if backend == "sqlite":
            self.db_url = f"sqlite:///{work / 'newswatch.db'}"
        else:
            self.db_name = f"newswatch_bench_{os.getpid()}"
            self.db_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.db_name}"
        self.config = work / "newswatch.toml"
        self.log_path = work / ".measure.log"
        self.config.write_text(newswatch_config(urls, self.db_url))

    def reset(self) -> None:
        if self.backend == "sqlite":
            for p in self.work.glob("newswatch.db*"):
                p.unlink()
        else:
            _pg(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            _pg(f'CREATE DATABASE "{self.db_name}"')

    def drop(self) -> None:
        if self.backend != "sqlite":
            _pg(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    def run(self, scenario: str) -> Measurement:
        args = ["poll"] if scenario == "cold" else ["poll", "--all"]
        env = dict(os.environ, **self.extra_env, NEWSWATCH_DATABASE_URL=self.db_url)
        flags = [] if self.prefect else ["--no-prefect"]
        cmd = [*self.cmd, "--config", str(self.config), *flags, *args]
        return measure(cmd, env=env, cwd=self.work, timeout=self.timeout)


class Peer:
    """A peer (newsboat, rss2email) behind the Tool interface."""

    def __init__(self, peer: Newsboat | Rss2email, timeout: float) -> None:
        self.peer = peer
        self.name = peer.name
        self.timeout = timeout
        self.log_path = peer.work / ".measure.log"

    def reset(self) -> None:
        self.peer.reset()

    def run(self, scenario: str) -> Measurement:
        return self.peer.run(self.timeout)


PACKAGES = ("newswatch", "sources", "storage", "watch", "digest", "flows")


def compile_bytecode() -> None:
    """Write the .pyc files an installed environment has.

    `uv sync` installs without compiling, and with PYTHONDONTWRITEBYTECODE set (as on
    the shared machine) nothing ever writes them: every newswatch process then
    compiles SQLAlchemy, aiohttp, Prefect and the rest from source, several seconds of
    CPU that a user's installation (pip compiles on install; Python caches on first
    import) never pays. `uv sync --compile-bytecode` (or `[tool.uv] compile-bytecode`)
    does the same for the dependencies.
    """
    import site

    targets = [p for p in site.getsitepackages() if Path(p).is_dir()]
    targets += [str(REPO / name) for name in PACKAGES if (REPO / name).is_dir()]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # -q -q: the few files written for another Python version fail quietly
    cmd = [sys.executable, "-m", "compileall", "-q", "-q", "-j", "0", *targets]
    subprocess.run(cmd, env=env, check=False, stdout=subprocess.DEVNULL)


def _pg(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.encode())


def pg_available() -> str:
    """Empty when PostgreSQL answers, else why not."""
    try:
        _pg("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL at 127.0.0.1:5432 unavailable: {exc}".splitlines()[0]
    return ""


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def newswatch_config(urls: Sequence[str], db_url: str) -> str:
    """The config a user would write for these feeds (DESIGN.md's format)."""
    lines = ["[storage]", f"url = {_toml_str(db_url)}", ""]
    for i, url in enumerate(urls):
        lines += ["[[sources]]", f'name = "bench-{i:05d}"', f"url = {_toml_str(url)}", ""]
    for name, query in TOPICS.items():
        lines += ["[[topics]]", f"name = {_toml_str(name)}", f"query = {_toml_str(query)}", ""]
    return "\n".join(lines)


def calibrate(feed_dir: Path, count: int = 20) -> dict[str, float]:
    """feedparser on a few generated feeds: a yardstick for how loaded the machine is.

    Issue 7 measured 25 ms of CPU a 50-entry feed on this machine when it was quiet;
    a much larger figure here means every number of the run is inflated alike.
    """
    import feedparser

    bodies = [p.read_bytes() for p in sorted((feed_dir / "base").glob("*.xml"))[:count]]
    feedparser.parse(bodies[0])  # imports and first-call set-up out of the timing
    wall, cpu = time.perf_counter(), time.process_time()
    for body in bodies:
        feedparser.parse(body)
    return {
        "feedparser_ms_per_feed_wall": (time.perf_counter() - wall) * 1000 / len(bodies),
        "feedparser_ms_per_feed_cpu": (time.process_time() - cpu) * 1000 / len(bodies),
        "loadavg_1min": os.getloadavg()[0],
    }


def _failure_line(output: str) -> str:
    """The line of a failed run's output that says why: its last error, else its last line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or ln.lower().startswith(("error", "fatal"))]
    return (errors or lines or [""])[-1]


def _all_304(stats: dict[str, Any], n: int) -> bool:
    return stats.get("304", 0) == n and not stats.get("200")


def run_tool(
    tool: Tool,
    server: Server,
    n: int,
    backend: str,
    reps: int,
    scenarios: Sequence[str],
    log: Callable[[str], None],
) -> list[Row]:
    """Every scenario of one tool, `reps` times; a failed run ends the tool's rows."""
    rows = {s: Row(s, n, tool.name, backend) for s in scenarios}
    # Each scenario starts from the state the previous one left.
    needed = SCENARIOS[: max(SCENARIOS.index(s) for s in scenarios) + 1]
    for rep in range(reps):
        server.variant("base")
        tool.reset()
        for scenario in needed:
            if scenario == "changed":
                server.variant("mutated")
            server.stats()
            load = os.getloadavg()[0]
            m = tool.run(scenario)
            stats = server.stats()
            primed = False
            if m.ok and scenario == "warm" and not _all_304(stats, n):
                # Not yet in the steady state (see the module docstring): prime once.
                m = tool.run(scenario)
                stats = server.stats()
                primed = True
            if not m.ok:
                why = _failure_line(m.output_tail)
                note = f"{scenario} run failed (exit {m.returncode}): {why}"[:300]
                note += f" (output: {tool.log_path.relative_to(REPO)})"
                log(f"  {tool.name}/{backend} N={n}: {note}")
                for row in rows.values():
                    row.note = row.note or f"skipped: {note}"
                return list(rows.values())
            if scenario in rows:
                rows[scenario].reps.append(
                    Rep(m.wall_s, m.cpu_s, m.peak_rss_mb, m.tree_rss_mb, stats, primed, load)
                )
                if primed and "primed" not in rows[scenario].note:
                    rows[scenario].note = "primed: the first warm run after cold was not all 304"
                if scenario == "warm" and not _all_304(stats, n):
                    rows[scenario].note = f"not all 304: server saw {stats}"
            log(
                f"  {tool.name:19} {backend:10} N={n:<5} rep {rep + 1} {scenario:7} "
                f"{m.wall_s:7.2f} s  cpu {m.cpu_s:6.2f} s  rss {m.peak_rss_mb:6.1f} MB  "
                f"server {stats.get('200', 0)}×200 {stats.get('304', 0)}×304"
                + f"  load {load:.1f}"
                + ("  (after a priming run)" if primed else "")
            )
        server.variant("base")
    return list(rows.values())


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """newswatch median / peer median for the same scenario and N."""
    peers = {
        (r["tool"], r["scenario"], r["n"]): r for r in rows if not r["tool"].startswith("newswatch")
    }
    for r in rows:
        if not r["tool"].startswith("newswatch") or "median_s" not in r:
            continue
        for peer in ("newsboat", "rss2email"):
            p = peers.get((peer, r["scenario"], r["n"]))
            if p and p.get("median_s"):
                r[f"ratio_{peer}"] = r["median_s"] / p["median_s"]


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'scenario':8} {'N':>5} {'tool':19} {'backend':10} {'median s':>9} {'min-max s':>13} "
        f"{'cpu s':>7} {'RSS MB':>7} {'200/304':>9} {'/newsboat':>9} {'/r2e':>6}"
    )
    out = [head, "-" * len(head)]
    order = {s: i for i, s in enumerate(SCENARIOS)}
    for r in sorted(rows, key=lambda r: (r["n"], order[r["scenario"]], r["tool"], r["backend"])):
        if "median_s" not in r:
            row = f"{r['scenario']:8} {r['n']:>5} {r['tool']:19} {r['backend']:10}"
            out.append(f"{row} {r['note']}")
            continue
        last = r["reps"][-1]["server"]
        codes = f"{last.get('200', 0)}/{last.get('304', 0)}"
        nb = f"{r['ratio_newsboat']:.2f}" if "ratio_newsboat" in r else ""
        r2 = f"{r['ratio_rss2email']:.2f}" if "ratio_rss2email" in r else ""
        out.append(
            f"{r['scenario']:8} {r['n']:>5} {r['tool']:19} {r['backend']:10} "
            f"{r['median_s']:9.2f} {r['min_s']:6.2f}-{r['max_s']:<6.2f} "
            f"{r['median_cpu_s']:7.2f} {r['peak_rss_mb']:7.1f} {codes:>9} {nb:>9} {r2:>6}"
            + (f"  [{r['note']}]" if r["note"] else "")
        )
    return "\n".join(out)


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table as Markdown, for bench/README.md and notes."""
    out = [
        "| scenario | N | tool | backend | median s [min–max] | CPU s | peak RSS MB "
        "| 200/304 | ×newsboat | ×rss2email |",
        "|---|--:|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    order = {s: i for i, s in enumerate(SCENARIOS)}
    for r in sorted(rows, key=lambda r: (r["n"], order[r["scenario"]], r["tool"], r["backend"])):
        if "median_s" not in r:
            out.append(
                f"| {r['scenario']} | {r['n']} | {r['tool']} | {r['backend']} "
                f"| {r['note']} | | | | | |"
            )
            continue
        last = r["reps"][-1]["server"]
        ratios = [f"{r[k]:.2f}" if k in r else "" for k in ("ratio_newsboat", "ratio_rss2email")]
        out.append(
            f"| {r['scenario']} | {r['n']} | {r['tool']} | {r['backend']} "
            f"| {r['median_s']:.2f} [{r['min_s']:.2f}–{r['max_s']:.2f}] "
            f"| {r['median_cpu_s']:.2f} | {r['peak_rss_mb']:.0f} "
            f"| {last.get('200', 0)}/{last.get('304', 0)} | {ratios[0]} | {ratios[1]} |"
        )
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="newswatch vs newsboat and rss2email, same feeds")
    p.add_argument("--sizes", default="200,1000", help="feed counts, comma-separated")
    p.add_argument("--reps", type=int, default=3, help="repetitions of each scenario (median)")
    p.add_argument("--backends", default="sqlite,postgresql", help="newswatch databases")
    p.add_argument("--peers", default="newsboat,rss2email", help="peers to run ('' for none)")
    p.add_argument("--tools", default="newswatch,peers", help="'newswatch', 'peers' or both")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="rows to report")
    p.add_argument("--rss2email-max", type=int, default=200, help="largest N for rss2email")
    p.add_argument("--quick", action="store_true", help="smoke run: N=50, 1 repetition")
    p.add_argument("--hosts", type=int, default=20, help="loopback addresses serving feeds")
    p.add_argument("--port", type=int, default=18470)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    p.add_argument("--newswatch-cmd", default="uv run newswatch", help="how to invoke newswatch")
    p.add_argument(
        "--prefect",
        choices=("both", "server", "off", "none"),
        default="both",
        help="server: newswatch reports to a Prefect server the harness starts; "
        "off: `newswatch --no-prefect poll` (rows 'newswatch-noprefect'); both: both "
        "(the pair is Prefect's overhead); none: leave Prefect to newswatch (an ephemeral "
        "server per process, or PREFECT_API_URL from the environment)",
    )
    p.add_argument(
        "--no-compile",
        action="store_true",
        help="do not byte-compile the environment first (see the README: without .pyc "
        "files every process compiles its imports from source)",
    )
    p.add_argument("--prefect-port", type=int, default=18420)
    p.add_argument("--report", type=Path, help="print a saved result as Markdown; run nothing")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.reps = "50", 1
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        print(markdown(json.loads(args.report.read_text())["rows"]))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    backends = [b for b in args.backends.split(",") if b]
    peers = [p for p in args.peers.split(",") if p]
    tools = set(args.tools.split(","))
    scenarios = [s for s in args.scenarios.split(",") if s]
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    work = BENCH / "work" / stamp
    notes: list[str] = []

    def log(msg: str) -> None:
        print(msg, flush=True)

    log(f"generating {max(sizes)} feeds (seed {args.seed}) ...")
    feed_dir = BENCH / "work" / f"feeds-{args.seed}-{max(sizes)}"
    feeds = gen_feeds.generate(feed_dir, max(sizes), seed=args.seed, hosts=args.hosts)
    yardstick = {"before": calibrate(feed_dir)}
    log(
        f"yardstick: feedparser {yardstick['before']['feedparser_ms_per_feed_cpu']:.0f} ms CPU "
        f"a feed (25 on a quiet machine), load {yardstick['before']['loadavg_1min']:.1f}"
    )
    server = Server(feed_dir, args.hosts, args.port)
    results: list[Row] = []
    prefect: PrefectServer | None = None
    nw_env: dict[str, str] = {}
    try:
        if not args.no_compile:
            log("byte-compiling the environment and newswatch (as an installed package is) ...")
            compile_bytecode()
        if "newswatch" in tools and args.prefect in ("server", "both"):
            log("starting a Prefect server ...")
            try:
                prefect = PrefectServer(work, args.prefect_port)
                nw_env = prefect.env
            except (RuntimeError, OSError) as exc:
                notes.append(f"no Prefect server ({exc}): newswatch ran without one")
                log(f"  {notes[-1]}")
        for n in sizes:
            urls = [server.url(f) for f in feeds[:n]]
            if "newswatch" in tools:
                for backend in backends:
                    if backend == "postgresql" and (why := pg_available()):
                        notes.append(why)
                        results += [Row(s, n, "newswatch", backend, note=why) for s in scenarios]
                        continue
                    modes = {"both": (True, False), "off": (False,)}.get(args.prefect, (True,))
                    for with_prefect in modes:
                        nw = Newswatch(
                            work / f"newswatch-{backend}-{n}", urls, backend,
                            shlex.split(args.newswatch_cmd), args.timeout, nw_env, with_prefect,
                        )  # fmt: skip
                        try:
                            results += run_tool(nw, server, n, backend, args.reps, scenarios, log)
                        finally:
                            nw.drop()
            if "peers" in tools:
                for name in peers:
                    if name == "rss2email" and n > args.rss2email_max:
                        note = f"skipped: rss2email capped at {args.rss2email_max} feeds"
                        results += [Row(s, n, name, "-", note=note) for s in scenarios]
                        continue
                    cls = Newsboat if name == "newsboat" else Rss2email
                    try:
                        peer = Peer(cls(work / f"{name}-{n}", urls), args.timeout)
                    except RuntimeError as exc:
                        notes.append(str(exc))
                        results += [Row(s, n, name, "-", note=f"skipped: {exc}") for s in scenarios]
                        continue
                    results += run_tool(peer, server, n, "-", args.reps, scenarios, log)
    finally:
        server.stop()
        if prefect is not None:
            prefect.stop()
    yardstick["after"] = calibrate(feed_dir)
    rows = [r.summary() for r in results]
    add_ratios(rows)
    print()
    print(table(rows))
    for note in dict.fromkeys(notes):
        print(f"note: {note}")
    for when, y in yardstick.items():
        print(
            f"yardstick {when}: feedparser {y['feedparser_ms_per_feed_cpu']:.0f} ms CPU, "
            f"{y['feedparser_ms_per_feed_wall']:.0f} ms wall a feed; load {y['loadavg_1min']:.1f}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{stamp}.json"
    sizes_kb = sorted(f.size for f in feeds)
    out.write_text(
        json.dumps(
            {
                "started": started.isoformat(),
                "finished": dt.datetime.now(dt.UTC).isoformat(),
                "machine": {
                    "cpus": os.cpu_count(),
                    "loadavg_at_start": os.getloadavg(),
                    "python": sys.version.split()[0],
                    "yardstick": yardstick,
                },
                "args": {k: str(v) for k, v in vars(args).items()},
                "feeds": {
                    "seed": args.seed,
                    "hosts": args.hosts,
                    "max_n": len(feeds),
                    "atom": sum(f.kind == "atom" for f in feeds),
                    "size_kb_min_median_max": [
                        sizes_kb[0] / 1024,
                        sizes_kb[len(sizes_kb) // 2] / 1024,
                        sizes_kb[-1] / 1024,
                    ],
                    "changed_fraction": 0.1,
                },
                "notes": list(dict.fromkeys(notes)),
                "rows": rows,
            },
            indent=1,
        )
    )
    print(f"bench took {time.perf_counter() - t0:.0f} s")
    print(f"written {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
