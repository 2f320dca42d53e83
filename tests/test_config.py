"""The configuration contract: key names, validation, one-line errors, environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from newswatch.config import ConfigError, load_config

REPO_ROOT = Path(__file__).resolve().parent.parent

DESIGN_QUERY = (
    "(Israel OR Israeli) AND (Turkey OR Türkiye OR Turkish) AND (Syria OR Syrian) "
    'AND (deconfliction OR coordination OR "military friction")'
)

# The minimal config of DESIGN.md, verbatim.
MINIMAL = """
[storage]
url = "sqlite:///newswatch.db"

[[sources]]
name = "Kurdistan24"
url = "https://www.kurdistan24.net/en/rss"

[[topics]]
name = "Israel–Turkey Syria deconfliction"
query = '@QUERY@'

[[digests]]
name = "daily"
topics = ["Israel–Turkey Syria deconfliction"]
schedule = "0 7 * * *"
timezone = "Europe/Istanbul"
format = "email"
to = ["analyst@example.org"]
output = "digests/"

[smtp]
host = "smtp.example.org"
port = 587
security = "starttls"
username = "newswatch"
from = "newswatch@example.org"
""".replace("@QUERY@", DESIGN_QUERY)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "newswatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env or {})
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_design_minimal_config_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={})
    assert [s.name for s in config.sources] == ["Kurdistan24"]
    assert config.digests[0].formats == ("email",)
    assert config.file.smtp is not None and config.file.smtp.sender == "newswatch@example.org"


def test_shipped_example_config_loads() -> None:
    config = load_config(REPO_ROOT / "newswatch.toml", env={})
    assert len(config.sources) >= 7
    assert any(t.name == "Israel–Turkey Syria deconfliction" for t in config.topics)


def test_relative_sqlite_path_lives_beside_the_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={})
    assert config.database_url == f"sqlite:///{tmp_path / 'newswatch.db'}"


def test_database_url_defaults_to_sqlite_beside_the_config(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "[[sources]]\nname='a'\nurl='http://x.example/f'\n"), env={}
    )
    assert config.database_url == f"sqlite:///{tmp_path / 'newswatch.db'}"


def test_environment_database_url_overrides_the_file(tmp_path: Path) -> None:
    url = "postgresql+psycopg://user@127.0.0.1:5432/newswatch"
    config = load_config(write(tmp_path, MINIMAL), env={"NEWSWATCH_DATABASE_URL": url})
    assert config.database_url == url


def test_config_path_comes_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    config = load_config(None, env={"NEWSWATCH_CONFIG": str(path)})
    assert config.path == path


def test_unknown_key_names_the_key_and_its_table(tmp_path: Path) -> None:
    text = MINIMAL.replace('name = "Kurdistan24"', 'name = "Kurdistan24"\ncolour = "red"')
    message = error_of(write(tmp_path, text))
    assert "unknown key 'colour'" in message
    assert "[[sources]] #1 ('Kurdistan24')" in message


def test_unknown_top_level_table_is_an_error(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, MINIMAL + "\n[feeds]\nx = 1\n"))
    assert "unknown key 'feeds'" in message


def test_unknown_key_in_a_plain_table_names_the_table(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, MINIMAL.replace("port = 587", "port = 587\nhots = 'x'")))
    assert "unknown key 'hots' in [smtp]" in message


def test_source_url_must_be_http(tmp_path: Path) -> None:
    text = MINIMAL.replace("https://www.kurdistan24.net/en/rss", "file:///etc/passwd")
    message = error_of(write(tmp_path, text))
    assert "[[sources]] #1" in message and "url" in message and "file:///etc/passwd" in message


def test_malformed_query_points_at_the_topic_and_position(tmp_path: Path) -> None:
    text = MINIMAL.replace("query = '(Israel OR Israeli)", "query = '((Israel OR Israeli)", 1)
    message = error_of(write(tmp_path, text))
    assert "[[topics]] #1" in message
    assert "Israel–Turkey Syria deconfliction" in message
    assert "column" in message or "position" in message


def test_bad_cron_is_an_error(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, MINIMAL.replace("0 7 * * *", "0 25 * * *")))
    assert "[[digests]] #1 ('daily') schedule" in message


def test_unknown_timezone_is_an_error(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, MINIMAL.replace("Europe/Istanbul", "Mars/Olympus")))
    assert "Mars/Olympus" in message


def test_digest_naming_an_unknown_topic_is_an_error(tmp_path: Path) -> None:
    text = MINIMAL.replace('topics = ["Israel–Turkey', 'topics = ["Nope", "Israel–Turkey')
    assert "unknown topic 'Nope'" in error_of(write(tmp_path, text))


def test_email_digest_without_smtp_table_is_an_error(tmp_path: Path) -> None:
    text = MINIMAL.split("[smtp]")[0]
    assert "no [smtp]" in error_of(write(tmp_path, text))


def test_duplicate_source_names_are_an_error(tmp_path: Path) -> None:
    text = MINIMAL + '\n[[sources]]\nname = "Kurdistan24"\nurl = "https://example.org/rss"\n'
    assert "two entries named 'Kurdistan24'" in error_of(write(tmp_path, text))


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    assert "invalid TOML" in error_of(write(tmp_path, "[[sources]\nname = 1"))


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    assert "config file not found" in error_of(tmp_path / "absent.toml")


def test_missing_smtp_password_is_reported_when_needed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={})
    with pytest.raises(ConfigError, match="NEWSWATCH_SMTP_PASSWORD"):
        config.require_smtp_password()


def test_smtp_password_comes_from_the_environment(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={"NEWSWATCH_SMTP_PASSWORD": "s3cret"})
    assert config.require_smtp_password() == "s3cret"
