"""Prefect orchestration: flows and deployments only, thin over the packages below.

Importing this package sets newswatch's defaults for Prefect before Prefect itself is
imported: no telemetry, so it works on machines without internet.
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
