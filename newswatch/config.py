"""The configuration: one TOML file plus `NEWSWATCH_*` environment variables.

Loaded once, validated completely (unknown keys, URLs, cron expressions, time zones,
topic queries) before anything touches the network or the database, and passed down
as a typed object. Secrets come from the environment only.

Every problem becomes a `ConfigError` whose message is one line naming the file, the
table and the key, so the CLI can print it as is.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_CONFIG_NAME = "newswatch.toml"
ENV_CONFIG = "NEWSWATCH_CONFIG"
ENV_DATABASE_URL = "NEWSWATCH_DATABASE_URL"
ENV_SMTP_PASSWORD = "NEWSWATCH_SMTP_PASSWORD"  # noqa: S105 - the variable's name, not a secret


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line that says where and why."""


def _http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value.strip()


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StorageConfig(_Table):
    url: str | None = None


class PollConfig(_Table):
    interval_minutes: float = Field(default=15, gt=0)
    concurrency: int = Field(default=50, ge=1, le=1000)
    per_host: int = Field(default=4, ge=1, le=100)
    connect_timeout: float = Field(default=10, gt=0)
    read_timeout: float = Field(default=20, gt=0)
    feed_timeout: float = Field(default=60, gt=0)  # whole request of one feed, body included
    deadline: float = Field(
        default=600, gt=0
    )  # whole poll; feeds not done by then are retried next time
    max_feed_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=20)
    # Feeds per Prefect task. 1,000 feeds in one task rather than ten of 100: a warm
    # poll took 3.0 s against 4.0 s, a cold one 16.2 s against 17.4 s and 24 MB less
    # at its peak (bench/README.md). A failed batch is retried whole; the feeds it had
    # stored then answer 304.
    batch_size: int = Field(default=1000, ge=1)
    user_agent: str | None = None


class SourceConfig(_Table):
    name: str = Field(min_length=1, max_length=200)
    url: HttpUrl
    tags: list[str] = []
    language: str | None = Field(default=None, max_length=35)  # a BCP 47 tag; the column holds 35
    poll_interval_minutes: float | None = Field(default=None, gt=0)


class TopicConfig(_Table):
    name: str = Field(min_length=1, max_length=200)
    query: str = Field(min_length=1)
    min_score: float = Field(default=0.0, ge=0)


class WatchConfig(_Table):
    backfill_days: float = Field(default=7, ge=0)  # new or edited topics are applied this far back


class ClusteringConfig(_Table):
    enabled: bool = True
    window_hours: float = Field(default=72, gt=0)
    threshold: float | None = Field(default=None, gt=0, le=1)


DigestFormat = Literal["email", "markdown", "html", "text"]


class DigestConfig(_Table):
    name: str = Field(min_length=1, max_length=200)
    topics: list[str] | None = None  # default: every topic
    schedule: str = "0 7 * * *"
    timezone: str = "UTC"
    format: DigestFormat | list[DigestFormat] = "markdown"
    to: list[str] = []
    output: str = "digests/"
    max_items_per_topic: int = Field(default=20, ge=1)
    send_empty: bool = False
    catchup_hours: float = Field(default=24, gt=0)  # a first digest never reaches further back

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from datetime import datetime

        from cronsim import CronSim, CronSimError

        try:
            CronSim(value, datetime(2026, 1, 1))
        except CronSimError as err:
            raise ValueError(f"bad cron expression {value!r}: {err}") from None
        return value

    @property
    def formats(self) -> tuple[DigestFormat, ...]:
        return (self.format,) if isinstance(self.format, str) else tuple(self.format)


class SmtpConfig(_Table):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    sender: str = Field(alias="from")
    timeout: float = Field(default=30, gt=0)
    ca_file: str | None = None  # trust this CA bundle (a private relay's certificate)


class ConfigFile(_Table):
    """The TOML file as written: table and key names are the contract."""

    storage: StorageConfig = StorageConfig()
    poll: PollConfig = PollConfig()
    sources: list[SourceConfig] = []
    aliases: dict[str, str] = {}
    topics: list[TopicConfig] = []
    watch: WatchConfig = WatchConfig()
    clustering: ClusteringConfig = ClusteringConfig()
    digests: list[DigestConfig] = []
    smtp: SmtpConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ConfigFile:
        _unique("sources", [s.name for s in self.sources])
        _unique("topics", [t.name for t in self.topics])
        _unique("digests", [d.name for d in self.digests])
        topic_names = {t.name for t in self.topics}
        for digest in self.digests:
            for name in digest.topics or ():
                if name not in topic_names:
                    raise ValueError(f"digest {digest.name!r} names unknown topic {name!r}")
            if "email" in digest.formats:
                if not digest.to:
                    raise ValueError(f"digest {digest.name!r} sends email but has no 'to'")
                if self.smtp is None:
                    raise ValueError(f"digest {digest.name!r} sends email but there is no [smtp]")
        return self


def _unique(table: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"[[{table}]] has two entries named {name!r}")
        seen.add(name)


@dataclass(frozen=True, slots=True)
class Config:
    """The loaded configuration: the file's tables plus what the environment decides."""

    path: Path
    file: ConfigFile
    database_url: str
    smtp_password: str | None

    @property
    def poll(self) -> PollConfig:
        return self.file.poll

    @property
    def sources(self) -> list[SourceConfig]:
        return self.file.sources

    @property
    def topics(self) -> list[TopicConfig]:
        return self.file.topics

    @property
    def aliases(self) -> dict[str, str]:
        return self.file.aliases

    @property
    def digests(self) -> list[DigestConfig]:
        return self.file.digests

    def digest(self, name: str | None) -> DigestConfig:
        """The digest called `name`, or the only/first one when `name` is None."""
        if not self.digests:
            raise ConfigError(f"{self.path}: no [[digests]] configured")
        if name is None:
            return self.digests[0]
        for digest in self.digests:
            if digest.name == name:
                return digest
        known = ", ".join(d.name for d in self.digests)
        raise ConfigError(f"{self.path}: no digest named {name!r} (configured: {known})")

    def resolve(self, path: str) -> Path:
        """A path from the config file, relative to the file's directory."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.path.parent / candidate

    def require_smtp_password(self) -> str | None:
        """The SMTP password when the [smtp] table names a user; a missing secret is an error."""
        smtp = self.file.smtp
        if smtp is not None and smtp.username and not self.smtp_password:
            raise ConfigError(
                f"{self.path}: [smtp] username is set but {ENV_SMTP_PASSWORD} is not "
                "(the password comes from the environment only)"
            )
        return self.smtp_password


def config_path(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """Where the config is: `--config`, else `NEWSWATCH_CONFIG`, else ./newswatch.toml."""
    if explicit:
        return Path(explicit)
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG])
    return Path(DEFAULT_CONFIG_NAME)


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read, validate and resolve the configuration. Raises ConfigError (one line)."""
    env = os.environ if env is None else env
    file_path = config_path(path, env).expanduser().absolute()
    try:
        raw = tomllib.loads(file_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file_path}: config file not found") from None
    except OSError as err:
        raise ConfigError(f"{file_path}: cannot read: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file_path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{file_path}: invalid TOML: {err}") from None
    try:
        parsed = ConfigFile.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{file_path}: {_describe(err, raw)}") from None
    _check_queries(file_path, parsed)
    return Config(
        path=file_path,
        file=parsed,
        database_url=_database_url(file_path, parsed, env),
        smtp_password=env.get(ENV_SMTP_PASSWORD) or None,
    )


def _database_url(path: Path, parsed: ConfigFile, env: Mapping[str, str]) -> str:
    url = env.get(ENV_DATABASE_URL) or parsed.storage.url or "sqlite:///newswatch.db"
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != "sqlite://":
        target = url[len(prefix) :]
        relative = not Path(target).is_absolute() and not target.startswith("file:")
        if target and target != ":memory:" and relative:
            # a relative SQLite file lives beside the config, wherever the command runs
            return prefix + str(path.parent / target)
    return url


def _check_queries(path: Path, parsed: ConfigFile) -> None:
    from watch.query import QueryError, parse_query, validate_aliases

    try:
        validate_aliases(parsed.aliases)
    except QueryError as err:
        raise ConfigError(f"{path}: [aliases]: {err}") from None
    for index, topic in enumerate(parsed.topics):
        try:
            parse_query(topic.query, parsed.aliases)
        except QueryError as err:
            raise ConfigError(
                f"{path}: [[topics]] #{index + 1} ({topic.name!r}) query: {err}"
            ) from None


def _describe(err: ValidationError, raw: dict[str, Any]) -> str:
    """The first validation error as 'what' + 'where', in TOML terms."""
    first = err.errors()[0]
    loc = list(first["loc"])
    where = _toml_location(loc, raw)
    if first["type"] == "extra_forbidden":
        key = loc[-1]
        return f"unknown key {key!r} in {where or 'the top level'}"
    if first["type"] == "missing":
        return f"missing key {loc[-1]!r} in {where or 'the top level'}"
    message = str(first["msg"]).removeprefix("Value error, ")
    field = loc[-1] if loc and isinstance(loc[-1], str) else None
    if field and where:
        return f"{where} {field}: {message}"
    return f"{where}: {message}" if where else message


def _toml_location(loc: list[Any], raw: dict[str, Any]) -> str:
    """('sources', 1, 'url') → '[[sources]] #2 ("Name")'; ('poll', 'x') → '[poll]'."""
    if not loc or not isinstance(loc[0], str):
        return ""
    table = loc[0]
    value = raw.get(table)
    if isinstance(value, list):
        if len(loc) > 1 and isinstance(loc[1], int):
            index = loc[1]
            name = ""
            if index < len(value) and isinstance(value[index], dict):
                entry_name = value[index].get("name")
                name = f" ({entry_name!r})" if isinstance(entry_name, str) else ""
            return f"[[{table}]] #{index + 1}{name}"
        return f"[[{table}]]"
    if isinstance(value, dict) and len(loc) > 1:
        return f"[{table}]"
    return ""
