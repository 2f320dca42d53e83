"""The compiled matcher: what matches, how it scores, and how it explains itself."""

from __future__ import annotations

import pytest

from watch.matcher import Document, Matcher, TopicMatch, TopicSpec, topic_fingerprint
from watch.query import QueryError


def match_one(query: str, title: str, text: str = "", **aliases: str) -> TopicMatch | None:
    matcher = Matcher.compile([TopicSpec("t", query)], aliases)
    found = matcher.match(Document(1, title, text))
    return found[0] if found else None


def matches(query: str, title: str, text: str = "") -> bool:
    return match_one(query, title, text) is not None


@pytest.mark.parametrize(
    ("query", "title", "expected"),
    [
        ("Turkey", "Turkey and Israel", True),
        ("Turkey", "TURKEY", True),
        ("Turkey", "Turkeys for sale", False),  # whole words only
        ("Turkey", "Turkey's army", True),
        ("Turkey*", "Turkeys for sale", True),
        ("deconflict*", "Deconfliction talks", True),
        ("deconflict*", "The talks on deconflicting", True),
        ("deconflict*", "Conflict talks", False),  # trailing wildcard is a prefix, not a substring
        ("Türkiye", "TÜRKIYE ile", True),
        ("turkiye", "Türkiye'nin İsrail ile", True),
        ("İsrail", "ISRAIL ve Türkiye", True),
        ("ISRAIL", "İsrail'in açıklaması", True),
        ("ישראל", "ישראל וטורקיה", True),
        ("טורקיה", "ישראל וטורקיה", False),  # attached prefix makes another word
        ("إسرائيل", "إسرائيل وتركيا تتفقان", True),
        ('"military friction"', "Avoiding military friction", True),
        ('"military friction"', "Avoiding military-friction", True),
        ('"military friction"', "Avoiding military, friction", True),
        ('"military friction"', "Friction, military", False),
        ("F-16", "Turkey buys F16 jets", False),
        ("F-16", "Turkey buys F-16 jets", True),
        ("Israel -Gaza", "Israel and Turkey", True),
        ("Israel -Gaza", "Israel and Gaza", False),
        ("Israel OR Turkey", "Turkey alone", True),
        ("Israel (Turkey OR Türkiye)", "Türkiye and Israel", True),
    ],
)
def test_matching(query: str, title: str, expected: bool) -> None:
    assert matches(query, title) is expected


@pytest.mark.parametrize(
    ("distance", "between", "expected"),
    [
        (0, 0, True),
        (0, 1, False),
        (1, 1, True),
        (3, 3, True),
        (3, 4, False),
        (5, 5, True),
        (5, 6, False),
    ],
)
def test_near_allows_at_most_n_words_between(distance: int, between: int, expected: bool) -> None:
    text = " ".join(["Israel", *["w"] * between, "Turkey"])
    assert matches(f"Israel NEAR/{distance} Turkey", "headline", text) is expected


def test_near_works_in_either_order() -> None:
    assert matches("Israel NEAR/1 Turkey", "Turkey and Israel")


def test_near_alone_means_five() -> None:
    assert matches("Israel NEAR Turkey", "Israel a b c d e Turkey")
    assert not matches("Israel NEAR Turkey", "Israel a b c d e f Turkey")


def test_near_takes_any_pair_of_hits() -> None:
    text = "Israel far away x x x x x x x x x. Later: Turkey and Israel met."
    assert matches("Israel NEAR/1 Turkey", "headline", text)


def test_near_between_groups_and_phrases() -> None:
    query = '(Israel OR Israeli) NEAR/2 "military channel"'
    assert matches(query, "Israeli officials: military channel with Ankara")
    assert not matches(query, "Israeli officials said the new military channel")


def test_near_measures_phrases_from_their_edges() -> None:
    assert matches('"hot line" NEAR/0 Syria', "a hot line Syria b")
    assert matches('Syria NEAR/0 "hot line"', "a hot line Syria b")


def test_near_does_not_reach_across_title_and_text() -> None:
    assert not matches("Israel NEAR/0 Turkey", "News from Israel", "Turkey replies")


def test_phrase_does_not_span_title_and_text() -> None:
    assert not matches('"israel turkey"', "News from Israel", "Turkey replies")


@pytest.mark.parametrize(
    ("title", "text", "expected"),
    [
        ("Turkey warns Israel", "", True),
        ("Officials warn", "Turkey warns Israel", False),
        ("Officials warn", "", False),
    ],
)
def test_title_scope(title: str, text: str, expected: bool) -> None:
    assert matches("title:Turkey Israel", title, text) is expected


def test_title_scope_on_a_group() -> None:
    assert matches('title:(Ankara OR "hot line")', "A hot line", "Ankara")
    assert not matches('title:(Ankara OR "hot line")', "News", "Ankara, hot line")


def test_text_is_searched_by_default() -> None:
    assert matches("Turkey Israel", "Headline", "Turkey and Israel agree")


def test_alias_is_expanded() -> None:
    assert match_one("@tr Israel", "Türkiye and Israel", tr="Turkey OR Türkiye") is not None


def test_compile_error_names_the_topic() -> None:
    with pytest.raises(QueryError, match='in query of topic "broken"'):
        Matcher.compile([TopicSpec("ok", "a"), TopicSpec("broken", "a AND (b")])


def test_only_matching_topics_are_returned_in_topic_order() -> None:
    matcher = Matcher.compile(
        [TopicSpec("b", "Turkey"), TopicSpec("none", "Gaza"), TopicSpec("a", "Israel")]
    )
    found = matcher.match(Document(7, "Israel and Turkey", ""))
    assert [(m.topic, m.doc_id) for m in found] == [("b", 7), ("a", 7)]


def test_match_many_yields_every_documents_matches() -> None:
    matcher = Matcher.compile([TopicSpec("t", "Turkey")])
    docs = [Document(i, title, "") for i, title in enumerate(["Turkey", "Gaza", "Turkey again"])]
    assert [m.doc_id for m in matcher.match_many(docs)] == [0, 2]


def test_no_topics_match_nothing() -> None:
    assert Matcher.compile([]).match(Document(1, "Turkey", "")) == []


def test_terms_are_the_distinct_matched_words_in_order_of_appearance() -> None:
    m = match_one(
        "(Israel OR Israeli) (Turkey OR Turkish) deconflict* -Gaza",
        "Turkish and Israeli deconfliction",
        "Turkey, Israel: deconflicting again. Israel",
    )
    assert m is not None
    assert m.terms == ("turkish", "israeli", "deconfliction", "turkey", "israel", "deconflicting")


def test_min_score_filters_weak_matches() -> None:
    weak = Document(1, "News", "Turkey said many things, and much later mentioned Israel.")
    strong = Document(2, "Turkey and Israel", "Turkey and Israel")
    matcher = Matcher.compile([TopicSpec("t", "Turkey Israel", min_score=3.0)])
    assert [m.doc_id for m in matcher.match_many([weak, strong])] == [2]


SCORE_ORDER = [
    # best first: more distinct terms, in the title, close together
    ("Israel Turkey Syria deconfliction", ""),
    ("Israel Turkey Syria", "deconfliction"),
    ("Headline", "Israel Turkey Syria deconfliction"),
    ("Headline", "Israel and Turkey talk. " + "Filler words here. " * 8 + "Syria deconfliction"),
    ("Headline", "Israel Turkey Syria"),
    ("Headline", "Israel and Turkey. " + "Filler words here. " * 8 + "Syria"),
]


def test_scores_rank_title_distinct_and_close_hits_higher() -> None:
    matcher = Matcher.compile([TopicSpec("t", "Israel Turkey (Syria OR deconfliction OR hotline)")])
    docs = [Document(i, title, text) for i, (title, text) in enumerate(SCORE_ORDER)]
    scores = [matcher.match(doc)[0].score for doc in docs]
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == len(scores)


def test_title_hit_scores_higher_than_the_same_body_hit() -> None:
    in_title = match_one("Turkey", "Turkey", "x")
    in_text = match_one("Turkey", "x", "Turkey")
    assert in_title is not None and in_text is not None
    assert in_title.score > in_text.score


def test_repeats_score_a_little_higher() -> None:
    once = match_one("Turkey", "x", "Turkey")
    twice = match_one("Turkey", "x", "Turkey. Turkey")
    assert once is not None and twice is not None
    assert twice.score > once.score


def test_scores_are_deterministic() -> None:
    first = match_one("Israel Turkey", "Israel", "and Turkey, Israel")
    again = match_one("Israel Turkey", "Israel", "and Turkey, Israel")
    assert first == again


def highlighted(m: TopicMatch) -> list[str]:
    return [m.snippet[s:e] for s, e in m.highlights]


def test_snippet_is_original_text_with_highlights() -> None:
    m = match_one("Türkiye İsrail", "Başlık", "TÜRKIYE ile İSRAİL, Suriye'de görüştü.")
    assert m is not None
    assert m.snippet == "TÜRKIYE ile İSRAİL, Suriye'de görüştü."
    assert highlighted(m) == ["TÜRKIYE", "İSRAİL"]


def test_snippet_highlights_hebrew_with_niqqud() -> None:
    m = match_one("שלום", "כותרת", "אמרו שָׁלוֹם לכולם")
    assert m is not None
    assert highlighted(m) == ["שָׁלוֹם"]


def test_snippet_highlights_arabic() -> None:
    m = match_one("إسرائيل AND تركيا", "عنوان", "قالت إسرائيل إن تركيا وافقت")
    assert m is not None
    assert highlighted(m) == ["إسرائيل", "تركيا"]


def test_snippet_highlights_a_phrase_and_wildcard_words() -> None:
    m = match_one('"hot line" deconflict*', "x", "A hot-line for Deconfliction.")
    assert m is not None
    assert highlighted(m) == ["hot-line", "Deconfliction"]
    assert m.terms == ("hot line", "deconfliction")


def test_snippet_is_cut_around_the_densest_hits_on_word_boundaries() -> None:
    text = "Filler words here. " * 30 + "Israel and Turkey agreed. " + "More filler. " * 30
    m = match_one("Israel Turkey", "Headline", text)
    assert m is not None
    assert len(m.snippet) <= 210
    assert m.snippet.startswith("…") and m.snippet.endswith("…")
    assert highlighted(m) == ["Israel", "Turkey"]
    body = m.snippet.strip("…")
    assert text.find(body) >= 0
    assert body[0] != " " and text[text.find(body) - 1] == " "


def test_snippet_falls_back_to_the_title() -> None:
    m = match_one("Turkey", "Turkey warns", "Nothing relevant here")
    assert m is not None
    assert m.snippet == "Turkey warns"
    assert highlighted(m) == ["Turkey"]


def test_snippet_has_no_line_breaks() -> None:
    m = match_one("Turkey", "x", "Line one\nTurkey\tsays")
    assert m is not None
    assert m.snippet == "Line one Turkey says"


ALIASES = {"tr": "Turkey OR Türkiye"}


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (TopicSpec("x", "@tr Israel"), TopicSpec("renamed", "Israel (TÜRKIYE OR turkey)")),
        (TopicSpec("x", "a OR b"), TopicSpec("x", "b OR a")),
    ],
)
def test_fingerprint_ignores_what_cannot_change_results(a: TopicSpec, b: TopicSpec) -> None:
    assert topic_fingerprint(a, ALIASES) == topic_fingerprint(b, ALIASES)


@pytest.mark.parametrize(
    "b",
    [
        TopicSpec("x", "@tr Israel Syria"),
        TopicSpec("x", "@tr Israel", min_score=1.5),
        TopicSpec("x", "title:@tr Israel"),
    ],
)
def test_fingerprint_changes_when_results_can_change(b: TopicSpec) -> None:
    a = TopicSpec("x", "@tr Israel")
    assert topic_fingerprint(a, ALIASES) != topic_fingerprint(b, ALIASES)


def test_fingerprint_follows_alias_edits() -> None:
    spec = TopicSpec("x", "@tr Israel")
    edited = {"tr": "Turkey OR Türkiye OR Ankara"}
    assert topic_fingerprint(spec, ALIASES) != topic_fingerprint(spec, edited)
    assert len(topic_fingerprint(spec, ALIASES)) == 64


def test_match_many_keeps_documents_apart_across_batches() -> None:
    matcher = Matcher.compile([TopicSpec("t", "Israel NEAR/0 Turkey")])
    # Each article ends with "Israel" and the next starts with "Turkey": never a match.
    docs = [Document(i, "Turkey", "Israel") for i in range(600)]
    docs += [Document(600, "Israel Turkey", "")]
    assert [m.doc_id for m in matcher.match_many(docs)] == [600]
