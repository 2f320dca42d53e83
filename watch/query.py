"""The watch-topic query language: parse a query string into a small AST.

A query says which articles belong to a topic. It is close to what media-monitoring
users know from Google Alerts, Meltwater or Talkwalker:

    Israel Turkey                     both words (juxtaposition is AND)
    Israel AND Turkey                 the same, spelled out
    Turkey OR Türkiye                 either word
    Syria NOT earthquake              Syria, but not articles mentioning earthquake
    Syria -earthquake                 the same: "-" directly before a term, phrase or group
    "military friction"               the words next to each other, in this order
    (Israel OR Israeli) AND Syria     parentheses group
    Israel NEAR/3 Turkey              both within 3 words of each other (at most 3 words
                                      between them, either order); NEAR alone means NEAR/5
    (Israel OR Israeli) NEAR/10 (Turkey OR Turkish)   NEAR works between groups and phrases
    deconflict*                       any word starting with "deconflict" (deconfliction, ...)
    title:Turkey                      only in the title; also title:"hot line", title:(a OR b)
    @turkey                           an alias defined in the config's [aliases] table,
                                      e.g. turkey = 'Turkey OR Türkiye OR Turkish OR Ankara'

Rules:

- Operators are upper-case only: AND, OR, NOT, NEAR, NEAR/n. Lower-case "and", "or",
  "not", "near" are ordinary words (so a headline phrase such as "Israel and Turkey"
  can be written in a query without quoting surprises).
- Precedence, tightest first: NOT (and "-") > NEAR > AND (explicit or implicit) > OR.
  So `a OR b c` is `a OR (b AND c)`, and `a b NEAR c` is `a AND (b NEAR c)`.
- Matching is on whole words, case-, accent- and dotted-i-insensitive and Unicode-
  normalised (`watch.normalize`): Türkiye = turkiye = TÜRKIYE, İsrail = israil.
  "Turkey" does not match "Turkeys" (use `Turkey*` for that). A term that contains
  punctuation is a phrase of its words: `F-16` is `"f 16"`, `Türkiye'nin` is
  `"turkiye nin"`. There is no stemming: Arabic and Hebrew words with attached
  prefixes (و, ال, ה, ב, ל ...) are different words; list the forms you need (an alias
  is the place for them) or use a trailing wildcard for suffixes.
- A wildcard needs at least 3 letters before the `*`, and is not allowed in phrases.
- NEAR operands cannot contain NOT; NEAR compares positions within one field (title
  or text), never across them.
- A query that would match an article containing none of its words (`-foo`,
  `NOT foo`, `a OR NOT b`) or that can never match (`a AND NOT a`) is rejected with a
  `QueryError`, as is any malformed query; the error points at the column of the fault.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from watch.normalize import fold

__all__ = [
    "And",
    "Near",
    "Not",
    "Or",
    "Phrase",
    "Prefix",
    "Query",
    "QueryError",
    "Term",
    "canonical",
    "leaves",
    "parse_query",
    "validate_aliases",
]

Field = Literal["any", "title"]
DEFAULT_NEAR = 5
MAX_NEAR = 100
MIN_WILDCARD = 3
_FIELDS: tuple[str, ...] = ("title",)
_ALIAS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")


class QueryError(ValueError):
    """A query that cannot be used; `str()` is one line that points at the fault."""

    def __init__(self, reason: str, text: str, position: int, where: str = "query") -> None:
        self.reason = reason
        self.text = text
        self.position = position
        self.where = where
        super().__init__(self._render())

    @property
    def column(self) -> int:
        """1-based column of the fault in `text`."""
        return self.position + 1

    def _render(self) -> str:
        flat = self.text.replace("\n", " ").replace("\t", " ")
        marked = f"{flat[: self.position]}>>>{flat[self.position :]}"
        return f"{self.reason} at column {self.column} in {self.where}: {marked}"

    def in_topic(self, topic: str) -> QueryError:
        """The same error, naming the topic whose query (or one of its aliases) it is in."""
        where = self.where
        where = f'query of topic "{topic}"' if where == "query" else f'{where} (topic "{topic}")'
        return QueryError(self.reason, self.text, self.position, where)


# ---------------------------------------------------------------- the AST


@dataclass(frozen=True, slots=True)
class Term:
    """One whole word, in normal form."""

    word: str
    field: Field = "any"

    def __str__(self) -> str:
        return _scoped(self.field, self.word)


@dataclass(frozen=True, slots=True)
class Phrase:
    """Consecutive words, in normal form (at least two)."""

    words: tuple[str, ...]
    field: Field = "any"

    def __str__(self) -> str:
        return _scoped(self.field, '"' + " ".join(self.words) + '"')


@dataclass(frozen=True, slots=True)
class Prefix:
    """Any word starting with `prefix` (a trailing-wildcard term), in normal form."""

    prefix: str
    field: Field = "any"

    def __str__(self) -> str:
        return _scoped(self.field, self.prefix + "*")


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Query, ...]

    def __str__(self) -> str:
        return "(" + " AND ".join(map(str, self.children)) + ")"


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Query, ...]

    def __str__(self) -> str:
        return "(" + " OR ".join(map(str, self.children)) + ")"


@dataclass(frozen=True, slots=True)
class Not:
    child: Query

    def __str__(self) -> str:
        return f"NOT {self.child}"


@dataclass(frozen=True, slots=True)
class Near:
    """Both operands hit, with at most `distance` words between a hit of each."""

    left: Query
    right: Query
    distance: int

    def __str__(self) -> str:
        return f"({self.left} NEAR/{self.distance} {self.right})"


Leaf = Term | Phrase | Prefix
Query = Term | Phrase | Prefix | And | Or | Not | Near


def _scoped(field: Field, text: str) -> str:
    return text if field == "any" else f"{field}:{text}"


def leaves(query: Query, *, positive: bool = True) -> Iterator[Leaf]:
    """The leaves of `query` in order; with `positive`, only those not under a NOT."""
    if isinstance(query, Term | Phrase | Prefix):
        yield query
    elif isinstance(query, And | Or):
        for child in query.children:
            yield from leaves(child, positive=positive)
    elif isinstance(query, Not):
        if not positive:
            yield from leaves(query.child, positive=positive)
    else:
        yield from leaves(query.left, positive=positive)
        yield from leaves(query.right, positive=positive)


def canonical(query: Query) -> str:
    """A text form equal for queries that match the same way (AND/OR flattened and sorted)."""
    if isinstance(query, And | Or):
        op = type(query)
        parts: list[str] = []
        for child in query.children:
            # (a AND b) AND c is a AND b AND c: flatten so grouping does not count.
            if isinstance(child, op):
                parts.extend(canonical(c) for c in child.children)
            else:
                parts.append(canonical(child))
        joiner = " AND " if op is And else " OR "
        return "(" + joiner.join(sorted(set(parts))) + ")"
    if isinstance(query, Not):
        return f"NOT {canonical(query.child)}"
    if isinstance(query, Near):
        return f"({canonical(query.left)} NEAR/{query.distance} {canonical(query.right)})"
    return str(query)


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # LPAREN RPAREN PHRASE WORD AND OR NOT NEAR MINUS FIELD ALIAS END
    text: str
    pos: int
    value: int = 0  # NEAR distance


_OPEN_QUOTES = {'"': '"', "\u201c": "\u201d", "\u201e": "\u201d"}
_NEAR = re.compile(r"NEAR(?:/(\S*))?")


def _tokenize(text: str, fail: _Fail) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "(":
            tokens.append(_Token("LPAREN", ch, i))
            i += 1
        elif ch == ")":
            tokens.append(_Token("RPAREN", ch, i))
            i += 1
        elif ch in _OPEN_QUOTES or ch == "\u201d":
            close = _OPEN_QUOTES.get(ch, '"')
            end = text.find(close, i + 1)
            if ch != '"' and end < 0:
                end = text.find('"', i + 1)
            if end < 0:
                raise fail("unterminated quote", i)
            tokens.append(_Token("PHRASE", text[i + 1 : end], i))
            i = end + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '()"\u201c\u201d\u201e':
                j += 1
            tokens.extend(_classify_word(text[i:j], i, fail))
            i = j
    tokens.append(_Token("END", "", n))
    return tokens


def _classify_word(word: str, pos: int, fail: _Fail) -> list[_Token]:
    if word in ("AND", "OR", "NOT"):
        return [_Token(word, word, pos)]
    near = _NEAR.fullmatch(word)
    if near:
        arg = near.group(1)
        if arg is None:
            return [_Token("NEAR", word, pos, DEFAULT_NEAR)]
        if not arg.isdigit() or not 0 <= int(arg) <= MAX_NEAR:
            raise fail(f"NEAR/n needs a whole number of words from 0 to {MAX_NEAR}", pos + 5)
        return [_Token("NEAR", word, pos, int(arg))]
    if word.startswith("-"):
        if len(word) == 1:
            # "-" followed by a group or phrase: `-(a OR b)`, `-"a b"`.
            return [_Token("MINUS", "-", pos)]
        return [_Token("MINUS", "-", pos), *_classify_word(word[1:], pos + 1, fail)]
    head, colon, rest = word.partition(":")
    if colon and head.isalpha() and head.isascii():
        if head.lower() not in _FIELDS:
            raise fail(f'unknown field "{head}:" (known: title:)', pos)
        field = [_Token("FIELD", head.lower(), pos)]
        return field + (_classify_word(rest, pos + len(head) + 1, fail) if rest else [])
    if word.startswith("@"):
        return [_Token("ALIAS", word[1:], pos)]
    return [_Token("WORD", word, pos)]


# ---------------------------------------------------------------- parser


class _Fail:
    """Builds QueryErrors for one text, so every error names the same place."""

    def __init__(self, text: str, where: str) -> None:
        self.text = text
        self.where = where

    def __call__(self, reason: str, position: int) -> QueryError:
        return QueryError(reason, self.text, position, self.where)


_STARTS_OPERAND = frozenset({"LPAREN", "PHRASE", "WORD", "NOT", "MINUS", "FIELD", "ALIAS"})


class _Parser:
    def __init__(
        self,
        text: str,
        aliases: Mapping[str, str],
        where: str,
        expanding: tuple[str, ...],
    ) -> None:
        self.fail = _Fail(text, where)
        self.tokens = _tokenize(text, self.fail)
        self.i = 0
        self.aliases = aliases
        self.expanding = expanding

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Query:
        if self.tok.kind == "END":
            raise self.fail("empty query", 0)
        query = self.or_expr("any")
        if self.tok.kind == "RPAREN":
            raise self.fail('unbalanced ")"', self.tok.pos)
        if self.tok.kind != "END":  # pragma: no cover - every other token starts an operand
            raise self.fail(f'unexpected "{self.tok.text}"', self.tok.pos)
        return query

    def or_expr(self, field: Field) -> Query:
        children = [self.and_expr(field)]
        while self.tok.kind == "OR":
            op = self.take()
            self.expect_operand(op)
            children.append(self.and_expr(field))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self, field: Field) -> Query:
        children = [self.near_expr(field)]
        while self.tok.kind == "AND" or self.tok.kind in _STARTS_OPERAND:
            if self.tok.kind == "AND":
                self.expect_operand(self.take())
            children.append(self.near_expr(field))
        return children[0] if len(children) == 1 else And(tuple(children))

    def near_expr(self, field: Field) -> Query:
        start = self.tok.pos
        left = self.unary(field)
        while self.tok.kind == "NEAR":
            op = self.take()
            self.expect_operand(op)
            right_pos = self.tok.pos
            right = self.unary(field)
            for operand, pos in ((left, start), (right, right_pos)):
                if _has_not(operand):
                    raise self.fail("NEAR operands cannot contain NOT", pos)
            left = Near(left, right, op.value)
        return left

    def unary(self, field: Field) -> Query:
        tok = self.tok
        if tok.kind in ("NOT", "MINUS"):
            self.take()
            if self.tok.kind not in _STARTS_OPERAND - {"NOT", "MINUS"}:
                what = "NOT" if tok.kind == "NOT" else '"-"'
                raise self.fail(f"{what} needs a term, phrase or group after it", tok.pos)
            return Not(self.unary(field))
        return self.primary(field)

    def primary(self, field: Field) -> Query:
        tok = self.take()
        if tok.kind == "FIELD":
            if self.tok.kind not in ("LPAREN", "PHRASE", "WORD", "ALIAS"):
                raise self.fail(f'"{tok.text}:" needs a term, phrase or group after it', tok.pos)
            return self.primary("title")
        if tok.kind == "LPAREN":
            if self.tok.kind == "RPAREN":
                raise self.fail("empty parentheses", tok.pos)
            inner = self.or_expr(field)
            if self.tok.kind != "RPAREN":
                raise self.fail('unbalanced "(": no matching ")"', tok.pos)
            self.take()
            return inner
        if tok.kind == "PHRASE":
            return self.phrase(tok, field)
        if tok.kind == "WORD":
            return self.word(tok, field)
        if tok.kind == "ALIAS":
            return self.alias(tok, field)
        if tok.kind == "RPAREN":
            raise self.fail('unbalanced ")"', tok.pos)
        if tok.kind == "END":
            raise self.fail("query ends where a term was expected", tok.pos)
        raise self.fail(f"{tok.text} needs a term before it", tok.pos)

    def expect_operand(self, op: _Token) -> None:
        if self.tok.kind not in _STARTS_OPERAND:
            raise self.fail(f"{op.text} needs a term, phrase or group after it", op.pos)

    def phrase(self, tok: _Token, field: Field) -> Query:
        if "*" in tok.text:
            raise self.fail("wildcards are not supported inside phrases", tok.pos)
        words = tuple(fold(tok.text).split())
        if not words:
            raise self.fail("empty phrase", tok.pos)
        return Term(words[0], field) if len(words) == 1 else Phrase(words, field)

    def word(self, tok: _Token, field: Field) -> Query:
        text = tok.text
        if "*" in text:
            star = text.index("*")
            if star != len(text) - 1:
                raise self.fail("a wildcard * is only allowed at the end of a word", tok.pos + star)
            words = fold(text[:-1]).split()
            if len(words) != 1 or len(words[0]) < MIN_WILDCARD:
                raise self.fail(
                    f"a wildcard needs at least {MIN_WILDCARD} letters or digits before *",
                    tok.pos,
                )
            if not text[:-1].strip()[-1:].isalnum():
                raise self.fail("a wildcard must follow a letter or digit", tok.pos + star)
            return Prefix(words[0], field)
        words = fold(text).split()
        if not words:
            raise self.fail(f'"{text}" has no letters or digits to match', tok.pos)
        return Term(words[0], field) if len(words) == 1 else Phrase(tuple(words), field)

    def alias(self, tok: _Token, field: Field) -> Query:
        name = tok.text
        if not _ALIAS_NAME.fullmatch(name):
            raise self.fail(f'"@{name}" is not a valid alias name', tok.pos)
        key = _alias_key(self.aliases, name)
        if key is None:
            raise self.fail(f"unknown alias @{name}", tok.pos)
        if key in self.expanding:
            chain = " -> ".join(f"@{a}" for a in (*self.expanding, key))
            raise self.fail(f"alias cycle {chain}", tok.pos)
        inner = _Parser(self.aliases[key], self.aliases, f"alias @{key}", (*self.expanding, key))
        query = inner.parse()
        return _with_field(query, field) if field != "any" else query


def _alias_key(aliases: Mapping[str, str], name: str) -> str | None:
    if name in aliases:
        return name
    lowered = {k.lower(): k for k in aliases}
    return lowered.get(name.lower())


def _has_not(query: Query) -> bool:
    if isinstance(query, Not):
        return True
    if isinstance(query, And | Or):
        return any(_has_not(c) for c in query.children)
    if isinstance(query, Near):
        return _has_not(query.left) or _has_not(query.right)
    return False


def _with_field(query: Query, field: Field) -> Query:
    """Push a `title:` scope down to the leaves (an alias used as `title:@x`)."""
    if isinstance(query, Term):
        return Term(query.word, field)
    if isinstance(query, Phrase):
        return Phrase(query.words, field)
    if isinstance(query, Prefix):
        return Prefix(query.prefix, field)
    if isinstance(query, And):
        return And(tuple(_with_field(c, field) for c in query.children))
    if isinstance(query, Or):
        return Or(tuple(_with_field(c, field) for c in query.children))
    if isinstance(query, Not):
        return Not(_with_field(query.child, field))
    return Near(_with_field(query.left, field), _with_field(query.right, field), query.distance)


# ---------------------------------------------------------------- sanity: everything / nothing

# A formula over named boolean variables: True/False, ("v", name), ("not", f),
# ("and", fs), ("or", fs). Small enough for a tiny DPLL.
_Formula = object


def _formula(query: Query) -> _Formula:
    if isinstance(query, Term | Phrase | Prefix):
        anywhere = ("v", str(_with_field(query, "any")))
        # title:x implies x: model it so `title:x -x` is recognised as a contradiction.
        return anywhere if query.field == "any" else ("and", (anywhere, ("v", str(query))))
    if isinstance(query, And):
        return ("and", tuple(_formula(c) for c in query.children))
    if isinstance(query, Or):
        return ("or", tuple(_formula(c) for c in query.children))
    if isinstance(query, Not):
        return ("not", _formula(query.child))
    # Closeness is its own fact, but implies both operands.
    return ("and", (_formula(query.left), _formula(query.right), ("v", str(query))))


def _evaluate(f: _Formula, env: Mapping[str, bool]) -> bool | _Formula:
    """Simplify `f` under a partial assignment; a bool when decided."""
    if isinstance(f, bool):
        return f
    assert isinstance(f, tuple)
    op, arg = f
    if op == "v":
        return env.get(arg, f)
    if op == "not":
        inner = _evaluate(arg, env)
        return (not inner) if isinstance(inner, bool) else ("not", inner)
    rest: list[_Formula] = []
    for child in arg:
        value = _evaluate(child, env)
        if isinstance(value, bool):
            if value == (op == "or"):
                return value
        else:
            rest.append(value)
    if not rest:
        return bool(op == "and")
    return rest[0] if len(rest) == 1 else (op, tuple(rest))


def _first_var(f: _Formula) -> str:
    assert isinstance(f, tuple)
    op, arg = f
    if op == "v":
        return str(arg)
    return _first_var(arg if op == "not" else arg[0])


_SAT_BUDGET = 20_000


def _satisfiable(f: _Formula, budget: list[int] | None = None) -> bool:
    """Whether some assignment makes `f` true; gives up (says yes) past a step budget.

    Real queries settle in a few steps; the budget only keeps a pathological query
    from stalling config loading, at the price of not flagging it as contradictory.
    """
    budget = [_SAT_BUDGET] if budget is None else budget
    if isinstance(f, bool):
        return f
    budget[0] -= 1
    if budget[0] < 0:
        return True
    var = _first_var(f)
    return any(_satisfiable(_evaluate(f, {var: value}), budget) for value in (True, False))


def _check_sensible(query: Query, fail: _Fail) -> None:
    formula = _formula(query)
    if _evaluate(formula, _AllFalse()) is True:
        raise fail(
            "query matches articles that contain none of its words (only negations?); "
            "add a term that must be present",
            0,
        )
    if not _satisfiable(formula):
        raise fail("query can never match (it contradicts itself, e.g. a AND NOT a)", 0)


class _AllFalse(dict[str, bool]):
    def get(self, key: str, default: object = None) -> bool:  # type: ignore[override]
        return False


# ---------------------------------------------------------------- public entry points


def parse_query(text: str, aliases: Mapping[str, str] | None = None) -> Query:
    """Parse `text` into a query AST, expanding `@aliases`; raise QueryError when unusable."""
    parser = _Parser(text, aliases or {}, "query", ())
    query = parser.parse()
    _check_sensible(query, parser.fail)
    return query


def validate_aliases(aliases: Mapping[str, str]) -> None:
    """Raise QueryError for a malformed alias, an unknown alias it uses, or a cycle."""
    for name, text in aliases.items():
        if not _ALIAS_NAME.fullmatch(name):
            raise QueryError(f'"{name}" is not a valid alias name', name, 0, "[aliases]")
        if not isinstance(text, str):
            raise QueryError(f"alias @{name} must be a string", name, 0, "[aliases]")
        _Parser(text, aliases, f"alias @{name}", (name,)).parse()
