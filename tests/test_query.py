"""The query language: every operator, precedence, aliases, and errors that point at the fault."""

from __future__ import annotations

import re

import pytest

from watch.query import (
    And,
    Near,
    Not,
    Or,
    Phrase,
    Prefix,
    QueryError,
    Term,
    canonical,
    parse_query,
    validate_aliases,
)

ALIASES = {
    "turkey": "Turkey OR Türkiye",
    "both": "@turkey AND Israel",
}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Turkey", "turkey"),
        ("TÜRKIYE", "turkiye"),
        ("İsrail", "israil"),
        ('"military friction"', '"military friction"'),
        ('"Turkey"', "turkey"),
        ("Israel AND Turkey", "(israel AND turkey)"),
        ("Israel Turkey", "(israel AND turkey)"),
        ("Israel OR Turkey", "(israel OR turkey)"),
        ("Israel NOT Turkey", "(israel AND NOT turkey)"),
        ("Israel -Turkey", "(israel AND NOT turkey)"),
        ("Israel -(a OR b)", "(israel AND NOT (a OR b))"),
        ('Israel -"hot line"', '(israel AND NOT "hot line")'),
        ("Israel NEAR Turkey", "(israel NEAR/5 turkey)"),
        ("Israel NEAR/3 Turkey", "(israel NEAR/3 turkey)"),
        ("Israel NEAR/0 Turkey", "(israel NEAR/0 turkey)"),
        ('(a OR b) NEAR/2 "c d"', '((a OR b) NEAR/2 "c d")'),
        ("deconflict*", "deconflict*"),
        ("Türkiye*", "turkiye*"),
        ("title:Turkey", "title:turkey"),
        ('title:"hot line"', 'title:"hot line"'),
        ("title:(a OR bcd*)", "(title:a OR title:bcd*)"),
        ("TITLE:turkey", "title:turkey"),
        ("@turkey", "(turkey OR turkiye)"),
        ("@both", "((turkey OR turkiye) AND israel)"),
        ("title:@turkey", "(title:turkey OR title:turkiye)"),
        ("F-16", '"f 16"'),
        ("Türkiye'nin", '"turkiye nin"'),
        ("israel and turkey", "(israel AND and AND turkey)"),  # lower-case is a word
        ("a or b", "(a AND or AND b)"),
        ("near", "near"),
        ("\u201chot line\u201d", '"hot line"'),  # typographic quotes
        ("a\nAND\tb", "(a AND b)"),
    ],
)
def test_parses(query: str, expected: str) -> None:
    assert str(parse_query(query, ALIASES)) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # NOT > NEAR > AND > OR
        ("a OR b c", "(a OR (b AND c))"),
        ("a b OR c", "((a AND b) OR c)"),
        ("a AND b OR c AND d", "((a AND b) OR (c AND d))"),
        ("a b NEAR c", "(a AND (b NEAR/5 c))"),
        ("a NEAR b OR c", "((a NEAR/5 b) OR c)"),
        ("a NEAR/1 b NEAR/2 c", "((a NEAR/1 b) NEAR/2 c)"),
        ("a -b OR c", "((a AND NOT b) OR c)"),
        ("a NOT b c", "(a AND NOT b AND c)"),
        ("(a OR b) c", "((a OR b) AND c)"),
        ("a (b OR c)", "(a AND (b OR c))"),
    ],
)
def test_precedence(query: str, expected: str) -> None:
    assert str(parse_query(query)) == expected


def test_ast_is_made_of_frozen_dataclasses() -> None:
    query = parse_query('title:abc* NEAR/2 "b c" OR d -e')
    assert query == Or(
        (
            Near(Prefix("abc", "title"), Phrase(("b", "c")), 2),
            And((Term("d"), Not(Term("e")))),
        )
    )


@pytest.mark.parametrize(
    ("query", "reason", "column"),
    [
        ("", "empty query", 1),
        ("   ", "empty query", 1),
        ("Israel AND (Turkey OR Syria", 'unbalanced "("', 12),
        ("Israel AND Turkey) OR Syria", 'unbalanced ")"', 18),
        (")", 'unbalanced ")"', 1),
        ("Israel AND", "AND needs a term", 8),
        ("Israel OR", "OR needs a term", 8),
        ("OR Israel", "OR needs a term before it", 1),
        ("AND Israel", "AND needs a term before it", 1),
        ("Israel OR OR Turkey", "OR needs a term", 8),
        ("Israel NEAR", "NEAR needs a term", 8),
        ("Israel NEAR/x Turkey", "NEAR/n needs a whole number", 13),
        ("Israel NEAR/999 Turkey", "NEAR/n needs a whole number", 13),
        ("Israel NOT", "NOT needs a term", 8),
        ("Israel -", '"-" needs a term', 8),
        ('Israel "hot line', "unterminated quote", 8),
        ('Israel ""', "empty phrase", 8),
        ("Israel ()", "empty parentheses", 8),
        ("Israel de*", "wildcard needs at least 3", 8),
        ("Israel de*con", "only allowed at the end", 10),
        ('Israel "deconf* talks"', "not supported inside phrases", 8),
        ("Israel body:Turkey", 'unknown field "body:"', 8),
        ("Israel title:", '"title:" needs a term', 8),
        ("Israel @nope", "unknown alias @nope", 8),
        ("Israel @", "not a valid alias name", 8),
        ("Israel ---", '"-" needs a term', 8),
        ("Israel ...", "no letters or digits", 8),
        ("NOT Israel NEAR Turkey", "NEAR operands cannot contain NOT", 1),
        ("Israel NEAR (Turkey -Syria)", "NEAR operands cannot contain NOT", 13),
    ],
)
def test_malformed_query_points_at_the_fault(query: str, reason: str, column: int) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(query, ALIASES)
    err = caught.value
    assert reason in str(err)
    assert err.column == column
    assert err.position == column - 1
    assert f"at column {column}" in str(err)
    assert "\n" not in str(err)


@pytest.mark.parametrize(
    "query",
    ["-Turkey", "NOT Turkey", "Israel OR NOT Turkey", "-(a OR b)", "NOT a NOT b", "a OR -a"],
)
def test_query_that_would_match_everything_is_rejected(query: str) -> None:
    with pytest.raises(QueryError, match="none of its words"):
        parse_query(query)


@pytest.mark.parametrize(
    "query",
    [
        "Israel AND NOT Israel",
        "ISRAEL -israel",
        "title:Turkey -Turkey",
        '"hot line" -"HOT LINE"',
        "(a OR b) -a -b",
        "(a NEAR b) -a",
        "@turkey -Turkey -Türkiye",
    ],
)
def test_query_that_can_never_match_is_rejected(query: str) -> None:
    with pytest.raises(QueryError, match="can never match"):
        parse_query(query, ALIASES)


@pytest.mark.parametrize(
    "query", ["a -title:a", "title:a OR -a b", "a NEAR/2 b -(a NEAR/1 b)", "turkey* -turkey"]
)
def test_narrowing_negations_are_accepted(query: str) -> None:
    parse_query(query)


def test_error_names_the_topic() -> None:
    with pytest.raises(QueryError) as caught:
        parse_query("a)")
    message = str(caught.value.in_topic("Syria watch"))
    assert message == 'unbalanced ")" at column 2 in query of topic "Syria watch": a>>>)'


def test_error_inside_an_alias_names_the_alias() -> None:
    with pytest.raises(QueryError) as caught:
        parse_query("Israel @bad", {"bad": "Turkey OR"})
    assert "in alias @bad" in str(caught.value)
    assert caught.value.column == 8


@pytest.mark.parametrize(
    ("aliases", "reason"),
    [
        ({"a": "@b", "b": "@a"}, "alias cycle"),
        ({"a": "x OR @a"}, "alias cycle @a -> @a"),
        ({"a": "x OR @missing"}, "unknown alias @missing"),
        ({"a": "(x OR y"}, 'unbalanced "("'),
        ({"bad name": "x"}, "not a valid alias name"),
    ],
)
def test_validate_aliases_rejects(aliases: dict[str, str], reason: str) -> None:
    with pytest.raises(QueryError, match=re.escape(reason)):
        validate_aliases(aliases)


def test_validate_aliases_accepts_a_chain() -> None:
    validate_aliases(ALIASES)


def test_aliases_are_case_insensitive() -> None:
    assert parse_query("@Turkey", ALIASES) == parse_query("@turkey", ALIASES)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Israel AND Turkey", "turkey israel"),
        ("a OR b OR c", "c OR (b OR a)"),
        ("(a b) c", "a (b c)"),
        ("TÜRKIYE", "turkiye"),
    ],
)
def test_canonical_form_ignores_order_grouping_and_case(a: str, b: str) -> None:
    assert canonical(parse_query(a)) == canonical(parse_query(b))


def test_canonical_form_tells_different_queries_apart() -> None:
    assert canonical(parse_query("a NEAR/3 b")) != canonical(parse_query("a NEAR/4 b"))
    assert canonical(parse_query("title:a")) != canonical(parse_query("a"))


def test_large_alias_queries_parse_quickly() -> None:
    words = " OR ".join(f"w{i}" for i in range(200))
    query = parse_query(f"({words}) ({words}) -({words.replace('w', 'x')})")
    assert isinstance(query, And)
