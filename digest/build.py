"""Stored matches → the digest view model: grouped by topic, then by story.

A story that several outlets carried appears once: its best-scoring article stands for
it and the others become "also reported by". Sections follow the configured topic
order; stories within a section are ordered by score, then newest first; at most
`max_items` stories are shown per topic, the rest counted in "and N more".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from digest.model import DigestView, OutletLink, StoryView, TopicSection
from storage.digests import DigestEntry, Sighted


@dataclass(frozen=True, slots=True)
class StoryContext:
    """What storage knows about the stories of the entries (other members' sightings)."""

    members: Mapping[int, Sequence[int]]  # story id → article ids
    sightings: Mapping[int, Sequence[Sighted]]  # article id → who carried it
    links: Mapping[int, str | None]  # article id → its link (canonical when known)


EMPTY_CONTEXT = StoryContext({}, {}, {})


def _outlets(sighted: Sequence[Sighted], link: str | None) -> tuple[OutletLink, ...]:
    # Every outlet of one article links to that article's one clean URL, not to the
    # feed's copy of it with its tracking parameters.
    seen: dict[str, OutletLink] = {}
    for item in sighted:
        seen.setdefault(item.source, OutletLink(item.source, link or item.url))
    return tuple(seen.values())


def _story(entries: Sequence[DigestEntry], context: StoryContext) -> StoryView:
    best = min(entries, key=lambda e: (-e.score, e.published_at, e.article_id))
    outlets = _outlets(best.outlets, best.url)
    shown = {outlet.name for outlet in outlets}
    others: list[OutletLink] = []
    # The group's own entries know their outlets even when the context does not.
    own = {e.article_id: e for e in entries}
    member_ids = list(context.members.get(best.story_id, ())) if best.story_id is not None else []
    member_ids += [e.article_id for e in entries if e.article_id not in member_ids]
    for article_id in member_ids:
        if article_id == best.article_id:
            continue
        mine = own.get(article_id)
        sighted_by = context.sightings.get(article_id) or (mine.outlets if mine else ())
        link = context.links.get(article_id) or (mine.url if mine else None)
        for sighted in sighted_by:
            if sighted.source not in shown:
                shown.add(sighted.source)
                others.append(OutletLink(sighted.source, link or sighted.url))
    terms = tuple(dict.fromkeys([*best.terms, *(t for e in entries for t in e.terms)]))
    return StoryView(
        title=best.title,
        url=best.url,
        outlets=outlets,
        published=best.published_at,
        snippet=best.snippet,
        highlights=best.highlights,
        score=best.score,
        terms=terms,
        also_reported=tuple(others),
    )


def build_view(
    *,
    name: str,
    timezone: str,
    generated_at: datetime,
    period_start: datetime | None,
    entries: Sequence[DigestEntry],
    topic_order: Sequence[str],
    max_items: int,
    context: StoryContext = EMPTY_CONTEXT,
) -> DigestView:
    by_topic: dict[str, dict[object, list[DigestEntry]]] = defaultdict(lambda: defaultdict(list))
    for entry in entries:
        key = (
            ("story", entry.story_id)
            if entry.story_id is not None
            else ("article", entry.article_id)
        )
        by_topic[entry.topic][key].append(entry)
    order = {topic: index for index, topic in enumerate(topic_order)}
    sections: list[TopicSection] = []
    for topic in sorted(by_topic, key=lambda t: (order.get(t, len(order)), t)):
        stories = [_story(group, context) for group in by_topic[topic].values()]
        stories.sort(key=lambda s: (-s.score, -s.published.timestamp(), s.title))
        shown = stories[:max_items]
        sections.append(TopicSection(topic, tuple(shown), more=len(stories) - len(shown)))
    return DigestView(
        name=name,
        timezone=timezone,
        generated_at=generated_at,
        period_start=period_start,
        sections=tuple(sections),
    )
