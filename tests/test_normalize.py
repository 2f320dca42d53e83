"""The matching normal form: case, accents, Turkish i, RTL scripts, and original offsets."""

from __future__ import annotations

import pytest

from watch.normalize import fold, normalize, word_spans, words


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Türkiye", "turkiye"),
        ("TÜRKIYE", "turkiye"),
        ("İsrail", "israil"),
        ("ISRAİL", "israil"),
        ("ıslak", "islak"),  # dotless i
        ("DİYARBAKIR", "diyarbakir"),
        ("Çavuşoğlu", "cavusoglu"),
        ("Straße", "strasse"),
        ("ﬁle", "file"),  # NFKC ligature
        ("Cafe\u0301", "café"),  # decomposed and precomposed accents meet
        ("שָׁלוֹם", "שלום"),  # Hebrew niqqud dropped
        ("عَرَبِيّ", "عربي"),  # Arabic harakat dropped
        ("إسرائيل", "اسراييل"),  # hamza forms fold to the bare letter
        ("عـــربي", "عربي"),  # tatweel dropped
    ],
)
def test_variants_share_one_normal_form(a: str, b: str) -> None:
    assert normalize(a) == normalize(b)
    assert fold(a) == fold(b)


@pytest.mark.parametrize(
    "text",
    [
        "Israel and Turkey reach military coordination agreement",
        "İsrail ile Türkiye Suriye'de askerî koordinasyon",
        "ישראל וטורקיה: שיחות בבאקו",
        "إسرائيل وتركيا تتفقان على آلية تنسيق",
        "snake_case, F-16s & 'quotes' — dashes…",
        "Cafe\u0301 NOËL ǅemal",
    ],
)
def test_folded_words_are_the_words(text: str) -> None:
    assert fold(text).split() == words(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Turkey's T4 base", [("turkey", "Turkey"), ("s", "s"), ("t4", "T4"), ("base", "base")]),
        ("İSRAİL ve Türkiye", [("israil", "İSRAİL"), ("ve", "ve"), ("turkiye", "Türkiye")]),
        ("שָׁלוֹם לכם", [("שלום", "שָׁלוֹם"), ("לכם", "לכם")]),
        ("قال: إسرائيل", [("قال", "قال"), ("اسراييل", "إسرائيل")]),
        ("Cafe\u0301 ok", [("cafe", "Cafe\u0301"), ("ok", "ok")]),
    ],
)
def test_word_spans_point_at_the_original_words(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(w, text[s:e]) for w, s, e in word_spans(text)] == expected


def test_underscore_separates_words() -> None:
    assert words("snake_case") == ["snake", "case"]
    assert fold("snake_case").split() == ["snake", "case"]
