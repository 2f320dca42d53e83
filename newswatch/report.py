"""A poll's results as the tables and Markdown that Prefect artifacts show."""

from __future__ import annotations

from typing import Any

from digest.render import markdown_escape, markdown_url
from newswatch.config import Config
from newswatch.poll import PollReport


def poll_table(report: PollReport) -> list[dict[str, Any]]:
    """One row per feed: status, new articles, duplicates, error."""
    return [
        {
            "feed": feed.name,
            "status": feed.status,
            "http": feed.http_status if feed.http_status is not None else "",
            "new articles": feed.new_articles,
            "duplicates": feed.duplicates,
            "error": feed.error or "",
        }
        for feed in sorted(report.feeds, key=lambda f: (f.status == "ok", f.name))
    ]


def matches_markdown(config: Config, report: PollReport) -> str:
    """The poll's new topic matches, by topic, best first."""
    from newswatch.databases import database
    from storage.topics import matches_for_articles

    with database(config).session() as session:
        lines = matches_for_articles(session, report.new_article_ids)
    header = (
        f"# Poll {report.started_at:%Y-%m-%d %H:%M} UTC\n\n"
        f"{len(report.feeds)} feeds: {report.ok} ok, {report.unchanged} unchanged, "
        f"{report.failed} failed; {report.new_articles} new articles, "
        f"{len(lines)} new matches.\n"
    )
    if not lines:
        return header + "\nNo new matches.\n"
    out = [header]
    topic = None
    for line in lines:
        if line.topic != topic:
            topic = line.topic
            out.append(f"\n## {markdown_escape(topic)}\n")
        url = markdown_url(line.url)
        title = f"[{markdown_escape(line.title)}]({url})" if url else markdown_escape(line.title)
        out.append(f"- {title} — {markdown_escape(line.source)} (score {line.score:.2f})")
    return "\n".join(out) + "\n"
