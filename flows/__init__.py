"""Prefect orchestration: flows and deployments only, thin over the packages below.

Importing this package sets newswatch's defaults for Prefect before Prefect itself is
imported (the environment still wins): no telemetry, so it works on machines without
internet, and a patient start for the temporary server of Prefect's ephemeral mode
(`newswatch poll` without PREFECT_API_URL), which needs far more than Prefect's 20 s
default on a busy machine when it first migrates its database.
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
