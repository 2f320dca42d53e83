"""Story clustering: near-duplicates from different outlets become one story."""

from __future__ import annotations

import dataclasses
import itertools
import json
import struct
import tracemalloc
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import watch.cluster
from watch.cluster import (
    DEFAULT_THRESHOLD,
    StoryCandidate,
    StoryClusterer,
    _summary_words,
    _words,
    feed_sketches,
    fingerprint,
    is_near_duplicate,
    sketch,
)
from watch.normalize import words

PAIRS_FILE = Path(__file__).parent / "data" / "story_pairs.jsonl"
T0 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)

LEDE = (
    "An Israeli strike on a car near the town of Nabatieh in south Lebanon killed three "
    "people on Monday, the Lebanese health ministry said, despite a ceasefire between "
    "Israel and Hezbollah."
)
OTHER_EVENT = (
    "An Israeli strike on a motorcycle near the town of Bint Jbeil in south Lebanon killed "
    "two people on Tuesday, the Lebanese health ministry said, despite a ceasefire between "
    "Israel and Hezbollah."
)
UNRELATED = (
    "Bukayo Saka's 88th-minute strike gave Arsenal a 2-1 win over Chelsea at the Emirates "
    "Stadium on Sunday, moving Mikel Arteta's side three points clear at the top."
)


def candidate(
    article_id: int,
    summary: str = LEDE,
    *,
    hours: float = 0,
    title: str = "Israeli strike kills three in south Lebanon",
    source: str = "AFP",
) -> StoryCandidate:
    return StoryCandidate(article_id, T0 + timedelta(hours=hours), title, summary, source)


def load_pairs() -> list[dict[str, object]]:
    return [json.loads(line) for line in PAIRS_FILE.read_text(encoding="utf-8").splitlines()]


def item(raw: object, article_id: int) -> StoryCandidate:
    assert isinstance(raw, dict)
    published = datetime.fromisoformat(raw["published_at"].replace("Z", "+00:00"))
    return StoryCandidate(article_id, published, raw["title"], raw["summary"], raw["source"])


def labelled_items() -> list[StoryCandidate]:
    """Every distinct news item of the labelled set, with ids in file order."""
    seen: dict[tuple[str, str, str], StoryCandidate] = {}
    for pair in load_pairs():
        for side in ("a", "b"):
            raw = pair[side]
            assert isinstance(raw, dict)
            ident = (raw["source"], raw["title"], raw["published_at"])
            if ident not in seen:
                seen[ident] = item(raw, len(seen) + 1)
    return list(seen.values())


def partition(clusterer: StoryClusterer, ids: list[int]) -> set[frozenset[int]]:
    groups: dict[int | None, set[int]] = {}
    for article_id in ids:
        groups.setdefault(clusterer.story_of(article_id), set()).add(article_id)
    return {frozenset(group) for group in groups.values()}


def test_wire_copy_under_different_urls_joins_one_story() -> None:
    clusterer = StoryClusterer()
    first, second = clusterer.add(
        [
            candidate(1, source="AFP"),
            candidate(2, hours=1, source="France 24", title="Israeli strike kills three"),
        ]
    )
    assert first.story_key == second.story_key == 1


def test_different_events_on_the_same_topic_stay_apart() -> None:
    clusterer = StoryClusterer()
    first, second = clusterer.add(
        [candidate(1), candidate(2, OTHER_EVENT, hours=20, title="Israeli strike kills two")]
    )
    assert first.story_key != second.story_key


def test_identical_articles_outside_the_window_never_merge() -> None:
    clusterer = StoryClusterer(window=timedelta(hours=72))
    first, second = clusterer.add([candidate(1), candidate(2, hours=72.5)])
    assert first.story_key != second.story_key


def test_template_headline_without_summary_never_merges() -> None:
    clusterer = StoryClusterer()
    live = "Live: Storm Bert latest"
    first, second = clusterer.add(
        [candidate(1, "", title=live), candidate(2, "", hours=30, title=live)]
    )
    assert first.story_key != second.story_key


def test_html_tags_and_wordpress_footer_do_not_separate_syndicated_copies() -> None:
    clusterer = StoryClusterer()
    syndicated = (
        f"<p>{LEDE}</p><p>The post <a href='https://example.org/x'>Israeli strike</a> "
        "appeared first on Example News.</p>"
    )
    first, second = clusterer.add([candidate(1), candidate(2, syndicated, hours=2)])
    assert first.story_key == second.story_key


def test_representative_is_the_earliest_published_then_the_lowest_id() -> None:
    clusterer = StoryClusterer()
    clusterer.add([candidate(5, hours=3), candidate(9, hours=1), candidate(7, hours=1)])
    story = clusterer.story(5)
    assert story is not None
    assert story.representative_article_id == 7


def test_when_stories_merge_the_smallest_key_survives() -> None:
    clusterer = StoryClusterer(threshold=0.4)
    clusterer.add([candidate(1, LEDE, title=""), candidate(2, UNRELATED, title="")])
    assert clusterer.story_of(1) != clusterer.story_of(2)
    # Article 3 carries both texts: a near-duplicate of each, it bridges the two stories.
    [joined] = clusterer.add([candidate(3, UNRELATED, hours=1, title=LEDE)])
    assert (joined.story_key, joined.merged_story_keys) == (1, (2,))
    assert clusterer.story_of(2) == 1


def test_stored_stories_reload_and_new_copies_join_them() -> None:
    clusterer = StoryClusterer()
    clusterer.load(
        [(candidate(40, hours=-5), 31)], representatives={31: (31, T0 - timedelta(days=5))}
    )
    [assignment] = clusterer.add([candidate(50, hours=1, source="Reuters")])
    assert (assignment.story_key, assignment.representative_article_id) == (31, 31)


def sketched(item: StoryCandidate, *, keep_text: bool = True) -> StoryCandidate:
    """`item` with its stored sketch (and, unless `keep_text`, no text beside it)."""
    stored = sketch(item.title, item.summary)
    if keep_text:
        return dataclasses.replace(item, sketch=stored)
    return dataclasses.replace(item, title="", summary="", sketch=stored)


def test_stored_sketches_give_the_stories_the_text_gives() -> None:
    items = labelled_items()
    from_text, from_sketches = StoryClusterer(), StoryClusterer()
    from_text.add(items)
    from_sketches.add([sketched(i, keep_text=False) for i in items])
    ids = [i.article_id for i in items]
    assert [from_sketches.story_of(i) for i in ids] == [from_text.story_of(i) for i in ids]
    assert len(partition(from_text, ids)) < len(ids)  # there were stories to find


def test_a_reload_reads_the_stored_sketch_not_the_text() -> None:
    clusterer = StoryClusterer()
    clusterer.load([(sketched(candidate(40, hours=-5), keep_text=False), 40)])
    [assignment] = clusterer.add([candidate(50, hours=1, source="Reuters")])
    assert assignment.story_key == 40


def test_an_article_given_by_its_sketch_alone_lends_its_signature_to_no_empty_text() -> None:
    # storage leaves out the text of sketched articles; an article whose text is
    # really empty, without a sketch, must not pass for the last of those
    clusterer = StoryClusterer()
    clusterer.add([sketched(candidate(1), keep_text=False)])
    clusterer.add([candidate(2, hours=1), candidate(3, "", hours=1, title="")])
    assert (clusterer.story_of(2), clusterer.story_of(3)) == (1, 3)


def test_a_sketch_of_another_version_is_ignored_for_the_text() -> None:
    stale = b"\x00" + sketch(UNRELATED, UNRELATED)[1:]  # type: ignore[index]
    clusterer = StoryClusterer()
    clusterer.add([candidate(1), dataclasses.replace(candidate(2, hours=1), sketch=stale)])
    assert clusterer.story_of(2) == 1


EXPECTED_SKETCH = (
    "0306028aecc4d850f6655f92419f1a986fa44a574207e97ea5b9025673f725ba754aafc3740d139933712"
    "433206d6f6e646179"
)


def test_the_sketch_format_changes_only_with_its_version() -> None:
    # If this fails, `_fingerprint` gives other values for the same text: bump
    # watch.cluster._SKETCH_VERSION (stored sketches would disagree with new ones),
    # then update the expected bytes here.
    assert sketch("Israeli strike kills 3", "On Monday, near Tyre.") == bytes.fromhex(
        EXPECTED_SKETCH
    )


def test_eviction_keeps_only_the_articles_inside_the_window() -> None:
    clusterer = StoryClusterer(window=timedelta(hours=24))
    stream = [candidate(n, f"{UNRELATED} {n}", hours=n) for n in range(1, 24 * 10)]
    for start in range(0, len(stream), 20):
        batch = stream[start : start + 20]
        clusterer.add(batch)
        clusterer.evict(batch[-1].published_at)
    now = stream[-1].published_at
    inside = [c for c in stream if c.published_at >= now - timedelta(hours=24)]
    assert len(clusterer) == len(inside) == 25


def test_memory_is_bounded_by_the_window_not_by_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The cache of recent wire-copy texts has a fixed bound of its own: made small
    # here, so that what remains to grow with history is the index and the stories.
    monkeypatch.setattr(watch.cluster, "_COPY_GENERATION", 8)
    clusterer = StoryClusterer(window=timedelta(hours=24))
    vocabulary = [f"word{n}" for n in range(400)]

    def feed(days: range) -> None:
        for hour in range(days.start * 24, days.stop * 24):
            batch = [
                candidate(
                    hour * 5 + k + 1,
                    " ".join(vocabulary[(hour * 37 + k * 11 + w * 7) % 400] for w in range(30)),
                    hours=hour + k / 5,
                    title=f"Report {hour} {k}",
                )
                for k in range(5)
            ]
            clusterer.add(batch)
            clusterer.evict(batch[-1].published_at)

    tracemalloc.start()
    try:
        feed(range(0, 3))
        after_three_days = tracemalloc.get_traced_memory()[0]
        feed(range(3, 12))
        after_twelve_days = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(clusterer) <= 125
    # 9 more days of history, the same window: the same memory give or take
    # where the window's index partitions stand.
    assert after_twelve_days < 1.5 * after_three_days


def test_a_copy_still_joins_its_story_after_the_index_dropped_evicted_entries() -> None:
    # Many windows of articles before the copy: the index partitions of all but the
    # last window or two were dropped whole.
    clusterer = StoryClusterer(window=timedelta(hours=24))
    stream = [candidate(n, f"{UNRELATED} {n}", hours=n) for n in range(1, 2101)]
    for start in range(0, len(stream), 50):
        batch = stream[start : start + 50]
        clusterer.add(batch)
        clusterer.evict(batch[-1].published_at)
    last = stream[-1]
    [copy] = clusterer.add([candidate(5000, last.summary, hours=2100.5, source="Reuters")])
    assert copy.story_key == last.article_id


def test_an_article_evicted_and_added_again_joins_stories_by_its_new_text() -> None:
    clusterer = StoryClusterer(window=timedelta(hours=24))
    clusterer.add([candidate(1)])
    clusterer.evict(T0 + timedelta(hours=30))
    clusterer.add([candidate(1, UNRELATED, hours=30, title="Saka strike beats Chelsea")])
    [lede_copy, unrelated_copy] = clusterer.add(
        [
            candidate(2, hours=30.5),
            candidate(3, UNRELATED, hours=30.5, title="Saka strike beats Chelsea"),
        ]
    )
    assert (lede_copy.story_key, unrelated_copy.story_key) == (2, 1)


def test_every_story_is_forgotten_once_its_articles_leave_the_window() -> None:
    clusterer = StoryClusterer(window=timedelta(hours=24))
    clusterer.add([candidate(1), candidate(2, hours=1)])
    clusterer.evict(T0 + timedelta(hours=26))
    assert (len(clusterer), clusterer.story_count, clusterer.story(1)) == (0, 0, None)


@settings(max_examples=25, deadline=None)
@given(order=st.permutations(labelled_items()), batch=st.integers(min_value=1, max_value=60))
def test_any_arrival_order_gives_the_same_stories(order: list[StoryCandidate], batch: int) -> None:
    reference = StoryClusterer()
    reference.add(sorted(order, key=lambda c: c.article_id))
    shuffled = StoryClusterer()
    for start in range(0, len(order), batch):
        shuffled.add(order[start : start + batch])
    ids = [c.article_id for c in order]
    assert partition(shuffled, ids) == partition(reference, ids)
    assert [shuffled.story_of(i) for i in ids] == [reference.story_of(i) for i in ids]


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_fast_path_gives_the_topic_normal_form(text: str) -> None:
    assert _words(text) == [word.encode() for word in words(text)]


PIECES = ["a", "b", " ", "1", "<", ">", "&", ";", "é", "appeared first on", "The post ", "&amp;"]


@settings(max_examples=200, deadline=None)
@given(summary=st.lists(st.sampled_from(PIECES)).map("".join))
def test_fingerprint_splits_a_summary_as_summary_words_does(summary: str) -> None:
    # _fingerprint splits a short plain ASCII summary inline, without _summary_words
    hashes = [zlib.crc32(word) for word in _summary_words(summary)]
    # held as the low 32 bits of each bigram's hash (on little-endian CPUs, as here)
    expected = {hash(pair) & 0xFFFFFFFF for pair in itertools.pairwise(hashes)}
    assert fingerprint("", summary).shingles == expected


@pytest.mark.parametrize(
    "text",
    [
        "Türkiye’s army and İsrail — “deconfliction” talks in Şam, résumé naïve",
        "It’s a “test” — of the em‑dash… ½ ﬁnal",
        "צה״ל ותורכיה מתאמים בסוריה",
        "تركيا وإسرائيل تنسقان في سوريا",
        "Ｆｕｌｌｗｉｄｔｈ ＮＡＴＯ and café́ déjà vu",
    ],
)
def test_non_ascii_words_give_the_topic_normal_form(text: str) -> None:
    assert _words(text) == [word.encode() for word in words(text)]


def _pair_predictions() -> list[tuple[bool, bool]]:
    out = []
    for pair in load_pairs():
        clusterer = StoryClusterer()
        a, b = clusterer.add([item(pair["a"], 1), item(pair["b"], 2)])
        out.append((pair["label"] == "same", a.story_key == b.story_key))
    return out


@pytest.fixture(scope="module")
def pair_predictions() -> list[tuple[bool, bool]]:
    return _pair_predictions()


def test_labelled_set_has_enough_pairs_of_both_kinds() -> None:
    labels = [pair["label"] for pair in load_pairs()]
    assert len(labels) >= 120
    assert labels.count("same") >= 60 and labels.count("different") >= 60


def test_labelled_pairs_default_threshold_precision_is_at_least_0_97(
    pair_predictions: list[tuple[bool, bool]],
) -> None:
    true_pos = sum(1 for same, merged in pair_predictions if same and merged)
    false_pos = sum(1 for same, merged in pair_predictions if merged and not same)
    positives = sum(1 for same, _ in pair_predictions if same)
    print(
        f"threshold {DEFAULT_THRESHOLD}: precision {true_pos / (true_pos + false_pos):.3f}, "
        f"recall {true_pos / positives:.3f} ({true_pos}/{positives}), false merges {false_pos}"
    )
    assert true_pos / (true_pos + false_pos) >= 0.97


def test_labelled_pairs_default_threshold_recall_is_at_least_0_75(
    pair_predictions: list[tuple[bool, bool]],
) -> None:
    true_pos = sum(1 for same, merged in pair_predictions if same and merged)
    positives = sum(1 for same, _ in pair_predictions if same)
    assert true_pos / positives >= 0.75


def test_candidate_index_finds_every_labelled_near_duplicate() -> None:
    window = timedelta(hours=72)
    for pair in load_pairs():
        a, b = item(pair["a"], 1), item(pair["b"], 2)
        edge = abs(a.published_at - b.published_at) <= window and is_near_duplicate(
            fingerprint(a.title, a.summary), fingerprint(b.title, b.summary)
        )
        first, second = StoryClusterer(window=window).add([a, b])
        assert (first.story_key == second.story_key) == edge, pair["id"]


def test_a_full_article_in_the_summary_still_joins_the_lede_only_copy() -> None:
    clusterer = StoryClusterer()
    body = " ".join(f"Paragraph {n} of the full report, with more detail." for n in range(200))
    first, second = clusterer.add([candidate(1), candidate(2, f"{LEDE} {body}", hours=1)])
    assert first.story_key == second.story_key


def test_a_story_carried_by_hundreds_of_outlets_stays_one_story() -> None:
    """Its phrases are on hundreds of index lists' worth of articles, as boilerplate
    is; a list whose articles are all one story is evidence, and stays open."""
    clusterer = StoryClusterer()
    names = [
        f"{a}{b} News"
        for a in ("North", "South", "East", "West", "Gulf")
        for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    ]
    outlets = [
        candidate(n, hours=n / 100, title=f"Israeli strike kills three in south Lebanon - {name}")
        for n, name in enumerate(names, start=1)
    ]
    assignments = clusterer.add(outlets)
    assert {a.story_key for a in assignments} == {1}


def test_boilerplate_shared_by_hundreds_of_articles_neither_merges_nor_hides_copies() -> None:
    """A phrase every article of a site carries is skipped as evidence (its index list
    would make each article a candidate of all the others), and copies still join."""
    from datetime import UTC, datetime, timedelta

    from watch.cluster import StoryCandidate, StoryClusterer

    start = datetime(2026, 11, 24, tzinfo=UTC)
    boiler = "Subscribe to our daily newsletter for the latest regional news and analysis"
    clusterer = StoryClusterer()
    items = [
        StoryCandidate(
            i,
            start + timedelta(minutes=i),
            f"Council report number {i} on district water budget item {i * 7}",
            f"{boiler}. Officials reviewed line {i} of plan {i * 13} for sector {i * 3}.",
        )
        for i in range(1, 400)
    ]
    copy = StoryCandidate(
        1000,
        start + timedelta(minutes=5),
        items[4].title,
        items[4].summary,
    )
    assignments = clusterer.add([*items, copy])
    story = {a.article_id: a.story_key for a in assignments}
    assert story[1000] == story[items[4].article_id]
    assert len({story[i.article_id] for i in items}) == len(items)


def test_a_text_too_short_for_any_index_key_gets_a_story_of_its_own() -> None:
    clusterer = StoryClusterer()
    first, second = clusterer.add(
        [candidate(1, "", title="Strike"), candidate(2, "", title="Strike")]
    )
    assert (first.story_key, second.story_key) == (1, 2)


# --- what most of a feed's entries carry --------------------------------------------

SIGN_OFF = (
    "Sign up for the Levant Daily briefing to get the most important stories from the "
    "region delivered to your inbox every morning, free of charge."
)
# Six different stories of one outlet, each a short lede: the sign-off is most of
# their words.
OUTLET_STORIES = [
    ("Turkish and Israeli officers meet in Baku", "Delegations met to discuss deconfliction."),
    ("Damascus airport reopens to regional flights", "A commercial flight landed after repairs."),
    ("Flooding closes the coastal road near Latakia", "Heavy rain swept away the highway."),
    ("Aleppo citadel restoration resumes", "Engineers returned to shore up damaged walls."),
    ("Wheat harvest forecast cut in Hasakah", "Drought has halved the yield, farmers said."),
    ("Electricity rationing eased in Homs", "Households will receive more hours of power."),
]


def _stories_of(sketches: list[bytes | None]) -> list[int]:
    clusterer = StoryClusterer()
    items = [
        StoryCandidate(i, T0 + timedelta(minutes=i), "", "", sketch=s)
        for i, s in enumerate(sketches, start=1)
    ]
    return [a.story_key for a in clusterer.add(items)]


def test_an_outlets_different_stories_stay_apart_though_each_ends_in_its_sign_off() -> None:
    entries = [(title, f"<p>{lede}</p><p>{SIGN_OFF}</p>") for title, lede in OUTLET_STORIES]
    assert len(set(_stories_of([sketch(*e) for e in entries]))) == 1  # each on its own text

    assert _stories_of(feed_sketches(entries)) == [1, 2, 3, 4, 5, 6]


def test_a_sign_off_is_left_out_of_the_sketch_of_each_entry_that_carries_it() -> None:
    entries = [(title, f"{lede} {SIGN_OFF}") for title, lede in OUTLET_STORIES]
    entries.append(("Ceasefire holds in Idlib", "Monitors reported a quiet night."))

    assert feed_sketches(entries) == [
        *(sketch(title, lede) for title, lede in OUTLET_STORIES),
        sketch("Ceasefire holds in Idlib", "Monitors reported a quiet night."),
    ]


def test_a_run_most_titles_begin_with_is_left_out_like_a_sign_off() -> None:
    entries = [(f"Syria live updates: {title}", lede) for title, lede in OUTLET_STORIES]

    assert feed_sketches(entries) == [sketch(title, lede) for title, lede in OUTLET_STORIES]


def test_a_run_fewer_than_half_of_a_feeds_entries_carry_stays_in_their_sketches() -> None:
    entries = [
        (title, f"{lede} {SIGN_OFF}" if i < 3 else lede)
        for i, (title, lede) in enumerate(OUTLET_STORIES * 2)
    ]

    assert feed_sketches(entries) == [sketch(*e) for e in entries]


def test_a_feed_of_two_entries_has_no_boilerplate() -> None:
    entries = [(title, f"{lede} {SIGN_OFF}") for title, lede in OUTLET_STORIES[:2]]

    assert feed_sketches(entries) == [sketch(*e) for e in entries]


def test_a_copy_without_the_outlets_sign_off_joins_the_story_it_copies() -> None:
    outlet = feed_sketches([(title, f"{lede} {SIGN_OFF}") for title, lede in OUTLET_STORIES])
    title, lede = OUTLET_STORIES[0]
    copy = sketch(title, f"{lede} Officials said.")
    # On its own text the first story shares too few words with the copy.
    assert _stories_of([sketch(title, f"{lede} {SIGN_OFF}"), copy]) == [1, 2]

    assert _stories_of([*outlet, copy])[::6] == [1, 1]


@settings(max_examples=30, deadline=None)
@given(order=st.permutations(range(len(OUTLET_STORIES) + 1)))
def test_feed_sketches_do_not_depend_on_the_order_of_the_entries(order: list[int]) -> None:
    entries = [(title, f"{lede} {SIGN_OFF}") for title, lede in OUTLET_STORIES]
    entries.append(("Ceasefire holds in Idlib", "Monitors reported a quiet night."))
    expected = feed_sketches(entries)

    assert feed_sketches([entries[i] for i in order]) == [expected[i] for i in order]


def test_a_real_feeds_sign_off_is_left_out_of_its_sketches(corpus_dir: Path) -> None:
    from sources.parse import parse_feed

    body = (corpus_dir / "codehollow-feedreader-tests/Feeds/Rss20MassaNews.xml").read_bytes()
    entries = [(e.title, e.summary) for e in parse_feed(body, "https://massanews.com/").entries]
    # Every summary ends "Leia mais no <a href=...>Massa News</a>!" ("read more at").
    without = [(t, s.removesuffix("!").rsplit("Leia mais no", 1)[0]) for t, s in entries]
    assert sum(s != w for (_, s), (_, w) in zip(entries, without, strict=True)) == 50

    sketches = feed_sketches(entries)

    assert sketches == [sketch(*e) for e in without]
    assert sketches != [sketch(*e) for e in entries]


def test_the_sketches_of_a_feed_of_huge_entries_hold_a_bounded_number_of_words() -> None:
    # 100 entries whose titles are 20,000 words each (14 MB): held as words at once,
    # they would take ~90 MB.
    entries = [
        (" ".join(f"w{i}x{n}" for n in range(20_000)), "A short summary of the entry.")
        for i in range(100)
    ]
    tracemalloc.start()
    try:
        sketches = feed_sketches(entries)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(sketches) == 100
    assert peak < 10_000_000


def _crafted_sketch(hashes: range, keys: list[int]) -> bytes:
    """A sketch with these bigram hashes and index keys, as `sketch` lays one out."""
    assert watch.cluster.SKETCH_PREFIX is not None
    head = watch.cluster.SKETCH_PREFIX + bytes([len(hashes), len(keys)])
    return head + struct.pack(f"={len(hashes)}I{len(keys)}q", *hashes, *keys)


def test_a_phrase_on_many_copies_of_a_few_stories_still_finds_the_next_copy() -> None:
    # Five stories, eight copies each, all holding one phrase (key 1): a story carried
    # by many outlets whose copies are not all joined yet, not boilerplate.
    def copy(story: int, keys: list[int]) -> bytes:
        return _crafted_sketch(range(story * 100, story * 100 + 20), keys)

    items = [
        StoryCandidate(
            n * 5 + story,
            T0 + timedelta(minutes=n),
            "",
            "",
            sketch=copy(story, [1, *range(story * 1000, story * 1000 + 15)]),
        )
        for n in range(8)
        for story in range(1, 6)
    ]
    # A late copy of the first story that shares only the phrase and one other key.
    late = StoryCandidate(
        100, T0 + timedelta(minutes=9), "", "", sketch=copy(1, [1, 1000, *range(50, 64)])
    )
    clusterer = StoryClusterer()
    first = clusterer.add(items)

    (found,) = clusterer.add([late])

    assert len({a.story_key for a in first}) == 5
    assert found.story_key == 1
