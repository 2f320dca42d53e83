"""The `digest` flow: one configured digest, rendered and delivered, published as Markdown."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from digest.run import DigestRunResult, digest_once
from newswatch.config import load_config
from newswatch.runs import database


def artifact_key(name: str) -> str:
    """A stable artifact key per digest (Prefect keys: lower-case letters, digits, dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "digest"
    return f"newswatch-digest-{slug}"


def _run_name() -> str:
    return f"digest-{datetime.now(UTC):%Y%m%d-%H%M}"


@flow(name="newswatch-digest", flow_run_name=_run_name)
def digest_flow(
    config_path: str = "newswatch.toml",
    name: str | None = None,
    fmt: str | None = None,
    output: str | None = None,
) -> DigestRunResult:
    """Build the digest `name` (default: the first configured) and deliver it."""
    config = load_config(config_path)
    result = digest_once(config, database(config), name=name, fmt=fmt, output=output)
    if result.markdown is not None:
        create_markdown_artifact(
            result.markdown,
            key=artifact_key(result.name),
            description=f"The {result.name!r} digest",
        )
    logger = get_run_logger()
    for line in result.lines():
        logger.info(line)
    if result.failed:
        # the flow run shows as failed in the UI; the matches stay pending
        raise RuntimeError(
            "; ".join(c.line(result.name) for c in result.channels if c.status == "failed")
        )
    return result
