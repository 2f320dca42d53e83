"""Run whole processes as a user runs them and measure them; the peers' set-ups.

`measure()` runs one command in its own session and returns wall time, CPU time,
peak RSS and the exit status. Peak RSS is taken two ways: `peak_rss_mb` is the
largest single process of the tree (the kernel's ru_maxrss, exact), and
`tree_rss_mb` is the largest sum over the live tree, sampled every 20 ms (it sees a
process pool; it can miss a short spike). The command runs under GNU time, a small
process: a child forked straight from the harness would inherit the harness's RSS
high-water mark into its ru_maxrss (Linux keeps it across exec).

The peers, each in a fresh directory with nothing from the user's home:
- newsboat: `newsboat -u urls -c cache.db -C config -x reload` with `reload-threads 10`;
  cold = no cache file, warm = the cache the cold run left (all 304);
- rss2email: `r2e -c r2e.cfg -d r2e.json run --no-send`; the config is written
  directly (one `[feed.NAME]` section a feed, as `r2e add` would) so setting up
  1,000 feeds does not take 1,000 process starts; cold = no data file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

NEWSBOAT = shutil.which("newsboat")
TIME = "/usr/bin/time"  # GNU time (Debian package `time`)
R2E = str(Path(sys.executable).with_name("r2e"))


@dataclass(frozen=True)
class Measurement:
    """One process tree's run."""

    wall_s: float
    cpu_s: float  # user + system of the whole tree (waited-for children included)
    peak_rss_mb: float  # largest single process
    tree_rss_mb: float  # largest sampled sum over the tree
    returncode: int
    output_tail: str  # last 40 lines of stdout+stderr, for a failure's note

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def measure(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 1800.0,
) -> Measurement:
    """Run `cmd` to completion (killing its session after `timeout`) and measure it."""
    log = (cwd or Path.cwd()) / ".measure.log"
    usage_file = log.with_suffix(".usage")
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [TIME, "-q", "-f", "%M %U %S", "-o", str(usage_file), *cmd],
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        peak_tree = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak_tree
            try:
                root = psutil.Process(proc.pid)
            except psutil.Error:
                return
            while not done.wait(0.02):
                peak_tree = max(peak_tree, _tree_rss(root))

        def kill() -> None:
            if not done.is_set():
                os.killpg(proc.pid, signal.SIGKILL)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(timeout, kill)
        timer.start()
        proc.wait()
        wall = time.perf_counter() - start
        done.set()
        timer.cancel()
        sampler.join()
    text = log.read_text(errors="replace").strip().splitlines()
    # GNU time writes "Command exited with non-zero status N" before the figures.
    fields = usage_file.read_text().split() if usage_file.exists() else []
    maxrss_kb, user_s, sys_s = (float(x) for x in fields[-3:]) if len(fields) >= 3 else (0, 0, 0)
    return Measurement(
        wall_s=wall,
        cpu_s=user_s + sys_s,
        peak_rss_mb=maxrss_kb / 1024,
        tree_rss_mb=peak_tree / 2**20,
        returncode=proc.returncode,
        output_tail="\n".join(text[-40:]),
    )


def clean_env(home: Path) -> dict[str, str]:
    """A minimal environment whose HOME is the work dir: nothing of the user's leaks in."""
    keep = ("PATH", "LANG", "LC_ALL", "TERM", "TZ", "UV_CACHE_DIR", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.setdefault("LANG", "C.UTF-8")
    env["HOME"] = str(home)
    return env


class Newsboat:
    """newsboat 2.x in its own directory: `-x reload` with 10 reload threads."""

    name = "newsboat"

    def __init__(self, work: Path, urls: Sequence[str], threads: int = 10) -> None:
        if NEWSBOAT is None:
            raise RuntimeError("newsboat is not installed (apt-get install -y newsboat)")
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        (work / "urls").write_text("".join(f"{u}\n" for u in urls))
        (work / "config").write_text(f"reload-threads {threads}\nshow-read-feeds yes\n")
        self.cache = work / "cache.db"

    def reset(self) -> None:
        """Forget everything: the next run is cold."""
        for p in self.work.glob("cache.db*"):
            p.unlink()

    def run(self, timeout: float = 1800.0) -> Measurement:
        assert NEWSBOAT is not None
        cmd = [NEWSBOAT, "-q", "-u", "urls", "-c", "cache.db", "-C", "config", "-x", "reload"]
        return measure(cmd, env=clean_env(self.work), cwd=self.work, timeout=timeout)


class Rss2email:
    """rss2email 3.x in its own directory: `r2e run --no-send`, no mail is sent."""

    name = "rss2email"

    def __init__(self, work: Path, urls: Sequence[str]) -> None:
        if not Path(R2E).exists():
            raise RuntimeError(f"{R2E} missing: run `uv sync --group bench`")
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        sections = "".join(f"\n[feed.f{i:05d}]\nurl = {u}\n" for i, u in enumerate(urls))
        (work / "r2e.cfg").write_text(
            "[DEFAULT]\n"
            "to = bench@localhost.invalid\n"
            "from = bench@localhost.invalid\n"
            # sendmail is never invoked with --no-send; point it at nothing to be sure
            "sendmail = /bin/false\n" + sections
        )
        self.data = work / "r2e.json"

    def reset(self) -> None:
        self.data.unlink(missing_ok=True)

    def run(self, timeout: float = 1800.0) -> Measurement:
        cmd = [R2E, "-c", "r2e.cfg", "-d", "r2e.json", "run", "--no-send"]
        # r2e takes a machine-wide lock in $XDG_RUNTIME_DIR (else /tmp/rss2email-UID):
        # a private one keeps another r2e on the machine from stalling the measurement.
        env = clean_env(self.work) | {"XDG_RUNTIME_DIR": str(self.work)}
        return measure(cmd, env=env, cwd=self.work, timeout=timeout)
