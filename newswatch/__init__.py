"""newswatch: poll news feeds, store each article once, flag watch topics, deliver digests."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("newswatch")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
