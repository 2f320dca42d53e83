"""The batch path of matching: one fold and one scan per batch must equal matching one by one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from watch.matcher import Document, Matcher, TopicSpec
from watch.normalize import fold, fold_fields, word_bounds, word_bounds_at, word_spans

TOPICS = [
    TopicSpec("deconfliction", "(Israel OR İsrail) AND (Turkey OR Türkiye) AND deconflict*"),
    TopicSpec("phrase", '"military friction" OR "f 16"'),
    TopicSpec("near", "Israel NEAR/3 Turkey"),
    TopicSpec("title", "title:Syria AND army"),
    TopicSpec("hebrew", "ישראל OR טורקיה"),
    TopicSpec("arabic", "اسراييل AND سوريا"),
    TopicSpec("weak", "Turkey", min_score=1.5),
]

TEXTS = [
    "Israel and Turkey: deconfliction talks",
    "İSRAİL ve TÜRKİYE deconfliction görüşmesi",
    "“Military” friction — Israel’s F-16s near Turkey",
    "ישראל וטורקיה: שיחות בבאקו",
    "إسرائيل وتركيا تتفقان في سوريا",
    "Syria army",
    "",
    "Turkey\x01Israel\x02deconfliction\x03Syria",
    "Straße ﬁle Café NOËL",
]

SCRIPTS = st.sampled_from(
    ["a", "B", " ", ",", "-", "’", "“", "—", "ü", "İ", "ı", "ß", "ש", "ָ", "ي", "ـ", "\x01", "\x02"]
)
FIELD = st.lists(SCRIPTS, max_size=30).map("".join) | st.sampled_from(TEXTS)


def _fields(folded: str) -> list[tuple[str, str]]:
    docs = folded.split("\x02")
    assert docs[-1].strip() == ""
    pairs = [doc.split("\x01") for doc in docs[:-1]]
    assert all(len(pair) == 2 for pair in pairs)
    return [(title, text) for title, text in pairs]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(FIELD, FIELD), min_size=1, max_size=8))
def test_folding_a_batch_gives_each_fields_words(docs: list[tuple[str, str]]) -> None:
    batch = [Document(i, title, text) for i, (title, text) in enumerate(docs)]
    folded = _fields(fold_fields(batch))
    assert len(folded) == len(docs)
    for (title, text), (f_title, f_text) in zip(docs, folded, strict=True):
        unmarked = str.maketrans("\x01\x02\x03", "   ")
        assert f_title.split() == fold(title.translate(unmarked)).split()
        assert f_text.split() == fold(text.translate(unmarked)).split()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(FIELD, FIELD), min_size=1, max_size=8))
def test_matching_a_batch_equals_matching_each_document(docs: list[tuple[str, str]]) -> None:
    matcher = Matcher.compile(TOPICS)
    batch = [Document(i, title, text) for i, (title, text) in enumerate(docs)]
    one_by_one = [m for doc in batch for m in matcher.match(doc)]
    assert list(matcher.match_many(batch)) == one_by_one


def test_batch_of_every_script_matches_each_document_alone() -> None:
    matcher = Matcher.compile(TOPICS)
    batch = [Document(i, t, u) for i, t in enumerate(TEXTS) for u in TEXTS]
    one_by_one = [m for doc in batch for m in matcher.match(doc)]
    assert list(matcher.match_many(batch)) == one_by_one
    assert {m.topic for m in one_by_one} == {t.name for t in TOPICS}


def test_break_characters_inside_a_text_do_not_split_documents() -> None:
    matcher = Matcher.compile([TopicSpec("t", "Turkey AND Israel")])
    docs = [Document(1, "Turkey\x02", "\x01Israel\x03"), Document(2, "Israel", "no")]
    assert [m.doc_id for m in matcher.match_many(docs)] == [1]


def test_a_topic_is_found_through_any_of_its_or_branches() -> None:
    # The anchor of (a OR b) AND c is {a, b} or {c}; either way each branch must match.
    matcher = Matcher.compile(
        [TopicSpec("t", "(Ankara OR Türkiye) AND (hotline OR deconfliction)")]
    )
    docs = [
        Document(1, "Ankara hotline", ""),
        Document(2, "Türkiye deconfliction", ""),
        Document(3, "Ankara", "no"),
    ]
    assert [m.doc_id for m in matcher.match_many(docs)] == [1, 2]


def test_a_not_inside_an_or_does_not_hide_a_match() -> None:
    matcher = Matcher.compile([TopicSpec("t", "Syria AND (hotline OR NOT earthquake)")])
    assert [m.doc_id for m in matcher.match_many([Document(1, "Syria talks", "")])] == [1]


@given(FIELD)
def test_word_bounds_are_the_spans_of_word_spans(text: str) -> None:
    assert word_bounds(text) == [(s, e) for _, s, e in word_spans(text)]
    assert word_bounds(text, 2) == [(s, e) for _, s, e in word_spans(text)][:2]


@given(
    st.lists(FIELD, min_size=1, max_size=12).map(" ".join),
    st.lists(st.integers(0, 60), max_size=6),
)
def test_word_bounds_at_picks_those_of_word_bounds(text: str, indices: list[int]) -> None:
    bounds = word_bounds(text)
    expected = {i: bounds[i] for i in indices if i < len(bounds)}
    assert word_bounds_at(text, indices) == expected


def test_a_phrase_matches_across_punctuation_between_its_words() -> None:
    # The anchor scan sees "military  friction" with two spaces; the phrase still holds.
    matcher = Matcher.compile([TopicSpec("p", '"military friction" AND Syria')])
    docs = [Document(1, "Syria", "More military, friction."), Document(2, "Syria", "friction")]
    assert [m.doc_id for m in matcher.match_many(docs)] == [1]


def test_documents_on_both_sides_of_a_batch_boundary_match_alone() -> None:
    matcher = Matcher.compile([TopicSpec("t", "Israel NEAR/0 Turkey")])
    # Each article ends with "Israel" and the next starts with "Turkey": never a match.
    docs = [Document(i, "Turkey", "Israel") for i in range(2500)]
    docs += [Document(2500, "Israel Turkey", "")]
    assert [m.doc_id for m in matcher.match_many(docs)] == [2500]


def test_long_articles_are_matched_in_smaller_batches_all_the_same() -> None:
    matcher = Matcher.compile([TopicSpec("t", "Israel AND Turkey")])
    long_text = "word " * 150_000 + "Turkey"
    docs = [Document(i, "Israel", long_text if i % 2 else "nothing") for i in range(8)]
    assert [m.doc_id for m in matcher.match_many(docs)] == [1, 3, 5, 7]
