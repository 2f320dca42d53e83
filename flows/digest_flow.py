"""The `digest` flow: one configured digest, rendered and delivered, published as Markdown.

Each `[[digests]]` entry gets its own deployment (cron in its own time zone, see
`flows.deployments`); a run builds that digest once with `digest.run.digest_once`
and publishes the rendered Markdown under a key stable per digest, so the Prefect UI
shows the digest's history.
"""

from __future__ import annotations

import re
from datetime import UTC

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import acreate_markdown_artifact

from digest.run import DigestRunResult, digest_once
from digest.smtp import DeliveryError
from newswatch.config import load_config
from newswatch.databases import database


def artifact_key(name: str) -> str:
    """A stable artifact key per digest (Prefect keys: lower-case letters, digits, dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "digest"
    return f"newswatch-digest-{slug}"


def digest_run_name() -> str:
    """`digest-<name>-YYYYMMDD-HHMM`, in UTC, from the run's scheduled start."""
    name = runtime.flow_run.parameters.get("name") or "default"
    slug = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-") or "default"
    return f"digest-{slug}-{runtime.flow_run.scheduled_start_time.astimezone(UTC):%Y%m%d-%H%M}"


@flow(name="newswatch-digest", flow_run_name=digest_run_name)
async def digest_flow(
    config_path: str = "newswatch.toml",
    name: str | None = None,
    fmt: str | None = None,
    output: str | None = None,
) -> DigestRunResult:
    """Build the digest `name` (default: the first configured) and deliver it.

    A channel that could not deliver fails the run (with `DeliveryError`, which the
    CLI prints as one line); its matches stay pending for the next run.
    """
    config = load_config(config_path)
    result = digest_once(config, database(config), name=name, fmt=fmt, output=output)
    if result.markdown is not None:
        await acreate_markdown_artifact(
            result.markdown,
            key=artifact_key(result.name),
            description=f"The {result.name!r} digest",
        )
    logger = get_run_logger()
    for line in result.lines():
        logger.info(line)
    if result.failed:
        raise DeliveryError(
            "; ".join(c.line(result.name) for c in result.channels if c.status == "failed")
        )
    return result
