"""`python -m storage.migrations revision "message"`: autogenerate a new revision."""

from __future__ import annotations

import sys

from storage.migrations import autogenerate_revision

if len(sys.argv) != 3 or sys.argv[1] != "revision":
    sys.exit('usage: python -m storage.migrations revision "message"')
autogenerate_revision(sys.argv[2])
