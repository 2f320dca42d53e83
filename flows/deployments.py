"""Deployments: the poll on an interval, each digest on its cron in its time zone.

`newswatch serve` registers them with the Prefect server and runs them in this one
process. The poll deployment never overlaps itself: concurrency limit 1 with
CANCEL_NEW, so a poll still running when the next is due makes the new run cancel.
`prefect.yaml` declares the same deployments for a process work pool.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron, Interval
from prefect.types.entrypoint import EntrypointType

from flows.digest_flow import digest_flow
from flows.poll_flow import poll_flow
from newswatch.config import Config

POLL_DEPLOYMENT = "poll"
TAGS = ["newswatch"]

# Polls fall on fixed times (every 15 minutes: :00, :15, :30, :45 UTC) that do not move
# when `newswatch serve` restarts; Prefect's default anchor is the moment of registration.
POLL_ANCHOR = datetime(2020, 1, 1, tzinfo=UTC)


def digest_deployment_name(name: str) -> str:
    """The deployment of the `[[digests]]` entry called `name`."""
    return f"digest-{name}"


def build_deployments(config: Config) -> list[RunnerDeployment]:
    """The poll deployment and one per configured digest, with their schedules.

    Entrypoints are module paths (`flows.poll_flow.poll_flow`), so runs start the same
    whatever directory `newswatch serve` was started from; the config path is made
    absolute for the same reason.
    """
    config_path = str(config.path.resolve())
    # to_deployment returns a coroutine only when called from async code
    deployments = [
        cast(
            RunnerDeployment,
            poll_flow.to_deployment(
                name=POLL_DEPLOYMENT,
                schedules=[
                    Interval(timedelta(minutes=config.poll.interval_minutes), POLL_ANCHOR, "UTC")
                ],
                parameters={"config_path": config_path, "all_sources": False},
                concurrency_limit=ConcurrencyLimitConfig(
                    limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
                ),
                description="Poll every due feed, store new articles, match topics.",
                tags=TAGS,
                entrypoint_type=EntrypointType.MODULE_PATH,
            ),
        )
    ]
    for digest in config.digests:
        deployment = cast(
            RunnerDeployment,
            digest_flow.to_deployment(
                name=digest_deployment_name(digest.name),
                schedules=[Cron(digest.schedule, timezone=digest.timezone)],
                parameters={"config_path": config_path, "name": digest.name},
                concurrency_limit=ConcurrencyLimitConfig(
                    limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
                ),
                description=f"Deliver the {digest.name!r} digest.",
                tags=TAGS,
                entrypoint_type=EntrypointType.MODULE_PATH,
            ),
        )
        deployments.append(deployment)
    return deployments


def serve_deployments(config: Config) -> None:
    """Register the deployments and run their schedules until interrupted."""
    serve(*build_deployments(config))
