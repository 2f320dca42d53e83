"""Match articles against every watch topic at once, with a score and an explanation.

`Matcher.compile` parses all topic queries (`watch.query`) once and puts every
distinct word, phrase and wildcard prefix of every topic into one Aho-Corasick
automaton. Each topic also gets an *anchor*: the smallest set of its words one of
which every matching article must contain (`_Compiler.anchor`); the anchors go into a
second, smaller automaton.

`match_many` works on batches of articles: it folds the titles and texts of a whole
batch to the matching normal form in one call (`watch.normalize.fold_fields`) and
scans the batch once for anchors, so the many articles that hit no anchor cost no
Python code of their own. Only an article that hits an anchor is scanned with the
full automaton, and only the topics it anchors have their boolean tree evaluated.
The cost of an article grows with its length, not with the number of topics.

Words are matched whole: the automaton's keys are the normal-form words with a
space on each side (a wildcard prefix only on the left), and the folded text has
every non-word character turned into a space, so "Turkey" never hits "Turkeys".

Score (deterministic; higher is better; `TopicSpec.min_score` filters on it):

    sum over the topic's distinct words that were hit of
        2.0 if hit in the title else 1.0, plus 0.1 per extra occurrence (up to 5)
    + closeness: (1 - 1/k) / (1 + spread / 5), best over title and text, where k is
      the number of distinct words hit in that field and spread the number of other
      words inside the smallest window holding one hit of each.

So one more distinct word always outweighs closeness (which stays below 1), and a
title hit outweighs the same hit in the text.

A match explains itself: `terms` are the distinct matched words (the actual words for
a wildcard), in order of first appearance, and `snippet` is about 200 characters of
the original text (not the normal form) around the densest cluster of hits, with
`highlights` as `[start, end)` offsets into the snippet.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import ahocorasick

from watch.normalize import fold_fields, word_bounds_at
from watch.query import (
    And,
    Not,
    Or,
    Phrase,
    Prefix,
    Query,
    QueryError,
    Term,
    canonical,
    leaves,
    parse_query,
)

__all__ = ["Document", "Matcher", "TopicMatch", "TopicSpec", "topic_fingerprint"]

SNIPPET_CHARS = 200
_BATCH = 1024  # articles folded and scanned together, at most
_BATCH_CHARS = 1 << 20  # and at most about this much text: long articles, smaller batches
# Bump when matching or scoring changes, so every topic's fingerprint changes and
# stored matches are recomputed.
MATCHER_VERSION = "1"
_TITLE_WEIGHT = 2.0
_BODY_WEIGHT = 1.0
_REPEAT_BONUS = 0.1
_MAX_REPEATS = 5
_SPREAD_SCALE = 5.0
_SPACES = re.compile("  +")
_LINE_BREAKS = re.compile("[\n\r\t\f\v]")


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    query: str
    min_score: float = 0.0


@dataclass(frozen=True, slots=True)
class Document:
    """An article to match; `text` is summary + content as plain text."""

    id: int
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class TopicMatch:
    topic: str
    doc_id: int
    score: float
    terms: tuple[str, ...]
    snippet: str
    highlights: tuple[tuple[int, int], ...]  # [start, end) offsets into `snippet`


def topic_fingerprint(spec: TopicSpec, aliases: Mapping[str, str]) -> str:
    """A 64-hex digest that changes when the topic's results can change.

    Built from the query after alias expansion and normalisation (so re-casing a word
    or reordering an OR changes nothing), the minimum score and the matcher version.
    """
    query = parse_query(spec.query, aliases)
    material = f"{MATCHER_VERSION}\n{canonical(query)}\n{float(spec.min_score)!r}"
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- compiled form


@dataclass(frozen=True, slots=True)
class _Leaf:
    key: int  # automaton key id
    title_only: bool
    width: int  # words covered by one hit
    prefix: bool
    label: str


# hit: (field, first word index, end word index); field 0 = title, 1 = text
_Hit = tuple[int, int, int]


class _Doc:
    """What one article's automaton pass found; positions are worked out on demand.

    The article is `hay[start:end]`, " title words \x01 text words \x02" with single
    spaces, so the word index of a hit is the number of spaces before it.
    """

    __slots__ = ("end", "hay", "hits", "in_title", "start", "title_end")

    def __init__(self, hay: str, start: int, end: int, hits: dict[int, list[int]]) -> None:
        self.hay = hay
        self.start = start
        self.end = end
        title_end = self.title_end = hay.index("\x01", start)
        self.hits = hits  # key id -> char offsets of the space before each hit
        self.in_title = {k for k, offsets in hits.items() if offsets[0] < title_end}

    def leaf_hits(self, leaf: _Leaf) -> list[_Hit]:
        found: list[_Hit] = []
        count, start = self.hay.count, self.start
        for offset in self.hits.get(leaf.key, ()):
            field = 0 if offset < self.title_end else 1
            if leaf.title_only and field:
                break
            index = count(" ", start, offset)
            found.append((field, index, index + leaf.width))
        return found

    def word(self, index: int) -> str:
        """The normal-form word at word `index` of this article."""
        return self.hay[self.start : self.end].split(" ", index + 2)[index + 1]


_Eval = Callable[[dict[int, list[int]], set[int], "_Doc"], bool]


def _near(left: Sequence[_Leaf], right: Sequence[_Leaf], distance: int, doc: _Doc) -> bool:
    lhits = [h for leaf in left for h in doc.leaf_hits(leaf)]
    rhits = [h for leaf in right for h in doc.leaf_hits(leaf)]
    for lf, ls, le in lhits:
        for rf, rs, re_ in rhits:
            if lf != rf or (ls, le) == (rs, re_):
                continue
            gap = rs - le if rs >= le else ls - re_
            if gap <= distance:
                return True
    return False


class _Compiler:
    def __init__(self) -> None:
        self.keys: dict[str, int] = {}
        self._texts: list[str] = []

    def key(self, text: str) -> int:
        key = self.keys.setdefault(text, len(self.keys))
        if key == len(self._texts):
            self._texts.append(text)
        return key

    def leaf(self, node: Term | Phrase | Prefix) -> _Leaf:
        title_only = node.field == "title"
        if isinstance(node, Term):
            return _Leaf(self.key(f" {node.word} "), title_only, 1, False, node.word)
        if isinstance(node, Phrase):
            label = " ".join(node.words)
            return _Leaf(self.key(f" {label} "), title_only, len(node.words), False, label)
        return _Leaf(self.key(f" {node.prefix}"), title_only, 1, True, node.prefix + "*")

    def build(self, node: Query) -> _Eval:
        """Compile `node` into one Python function of the article's hits.

        The boolean tree becomes a single expression over key ids (`3 in H and not
        7 in H`), which runs several times faster than a tree of closures. The source
        holds only integers and fixed names, never query text, so no query can inject
        code.
        """
        nears: list[tuple[tuple[_Leaf, ...], tuple[_Leaf, ...], int]] = []
        source = f"lambda H, T, d: {self._expr(node, nears)}"
        namespace = {"N": tuple(nears), "near": _near}
        function: _Eval = eval(source, namespace)  # noqa: S307 - see docstring
        return function

    def anchor(self, node: Query) -> frozenset[int]:
        """Keys one of which every article the query matches contains.

        A topic is evaluated only for articles that hit one of its anchor keys. The
        anchor is the smallest of the query's required clauses (an AND's operands,
        both sides of a NEAR; an OR needs one of its operands), so a topic such as
        `(Israel OR Israeli) AND deconfliction` waits for "deconfliction" instead
        of running on every article that mentions Israel.
        """
        clauses = self._clauses(node)
        if not clauses:  # the parser rejects such queries; stay correct regardless
            return frozenset(self.leaf(x).key for x in leaves(node))
        return min(clauses, key=lambda c: (len(c), -min(len(self.text(k)) for k in c)))

    def text(self, key: int) -> str:
        return self._texts[key]

    def anchor_text(self, key: int) -> str:
        """What the anchor scan looks for: the key, or a phrase's longest word."""
        text = self._texts[key]
        words = text.split()
        if len(words) < 2:
            return text
        return f" {max(words, key=len)} "

    def _clauses(self, node: Query) -> list[frozenset[int]]:
        if isinstance(node, Term | Phrase | Prefix):
            return [frozenset((self.leaf(node).key,))]
        if isinstance(node, And):
            return [c for child in node.children for c in self._clauses(child)]
        if isinstance(node, Or):
            union: set[int] = set()
            for child in node.children:
                options = self._clauses(child)
                if not options:
                    return []
                union |= min(options, key=len)
            return [frozenset(union)]
        if isinstance(node, Not):
            return []
        return self._clauses(node.left) + self._clauses(node.right)

    def _expr(
        self, node: Query, nears: list[tuple[tuple[_Leaf, ...], tuple[_Leaf, ...], int]]
    ) -> str:
        if isinstance(node, Term | Phrase | Prefix):
            leaf = self.leaf(node)
            return f"({leaf.key} in {'T' if leaf.title_only else 'H'})"
        if isinstance(node, And | Or):
            joiner = " and " if isinstance(node, And) else " or "
            return "(" + joiner.join(self._expr(c, nears) for c in node.children) + ")"
        if isinstance(node, Not):
            return f"(not {self._expr(node.child, nears)})"
        lhs, rhs = self._expr(node.left, nears), self._expr(node.right, nears)
        nears.append(
            (
                tuple(self.leaf(x) for x in leaves(node.left)),
                tuple(self.leaf(x) for x in leaves(node.right)),
                node.distance,
            )
        )
        i = len(nears) - 1
        return f"({lhs} and {rhs} and near(N[{i}][0], N[{i}][1], N[{i}][2], d))"


@dataclass(frozen=True, slots=True)
class _Topic:
    name: str
    min_score: float
    test: _Eval
    leaves: tuple[_Leaf, ...]  # distinct positive leaves: what scores and explains


class Matcher:
    """All topics compiled into one automaton; reusable across any number of articles.

    Two automata, in fact: `_anchors` holds only the topics' anchor words and scans
    every article; `_automaton` holds every key and scans only the articles that hit
    an anchor, to collect what their topics' boolean trees and explanations need.
    """

    def __init__(
        self,
        topics: Sequence[_Topic],
        automaton: ahocorasick.Automaton | None,
        anchors: ahocorasick.Automaton | None,
    ) -> None:
        self._topics = tuple(topics)
        self._automaton = automaton
        self._anchors = anchors

    @classmethod
    def compile(
        cls, topics: Sequence[TopicSpec], aliases: Mapping[str, str] | None = None
    ) -> Matcher:
        """Parse and compile `topics`; a bad query raises QueryError naming its topic."""
        compiler = _Compiler()
        compiled: list[_Topic] = []
        anchors: list[frozenset[int]] = []
        for spec in topics:
            try:
                query = parse_query(spec.query, aliases)
            except QueryError as err:
                raise err.in_topic(spec.name) from None
            test = compiler.build(query)
            positive = tuple(dict.fromkeys(compiler.leaf(x) for x in leaves(query)))
            compiled.append(_Topic(spec.name, float(spec.min_score), test, positive))
            anchors.append(compiler.anchor(query))
        # The anchor scan runs on text whose words may be separated by several spaces,
        # so a phrase is anchored by its longest word, which every occurrence contains.
        anchor_topics: dict[str, set[int]] = {}
        for index, anchor in enumerate(anchors):
            for key in anchor:
                anchor_topics.setdefault(compiler.anchor_text(key), set()).add(index)
        automaton: ahocorasick.Automaton | None = None
        anchor_automaton: ahocorasick.Automaton | None = None
        if compiler.keys:
            automaton = ahocorasick.Automaton()
            for text, key in compiler.keys.items():
                automaton.add_word(text, (key, len(text)))
            automaton.make_automaton()
            anchor_automaton = ahocorasick.Automaton()
            for text, indices in anchor_topics.items():
                anchor_automaton.add_word(text, tuple(sorted(indices)))
            anchor_automaton.make_automaton()
        return cls(compiled, automaton, anchor_automaton)

    def match(self, doc: Document) -> list[TopicMatch]:
        """Every topic `doc` matches (in topic order), with score, terms and snippet."""
        return list(self.match_many((doc,)))

    def match_many(self, docs: Iterable[Document]) -> Iterator[TopicMatch]:
        """Matches of every document in turn (per document in topic order).

        Documents are folded and scanned in batches: one automaton pass over a batch
        costs far less Python per article than one pass per article, and most
        articles hit nothing, so they never reach Python code again.
        """
        if self._automaton is None:
            return
        batch: list[Document] = []
        chars = 0
        for doc in docs:
            batch.append(doc)
            chars += len(doc.title) + len(doc.text)
            if len(batch) == _BATCH or chars >= _BATCH_CHARS:
                yield from self._match_batch(batch)
                batch, chars = [], 0
        if batch:
            yield from self._match_batch(batch)

    def _match_batch(self, docs: Sequence[Document]) -> Iterator[TopicMatch]:
        assert self._automaton is not None and self._anchors is not None
        # " title \x01 text \x02 title \x01 text \x02 ...", folded and scanned for
        # anchors in one piece, so an article that hits none costs no Python code.
        hay = " " + fold_fields(docs)
        ends: list[int] = []  # offset of each document's \x02
        find = hay.find
        at = find("\x02")
        while at >= 0:
            ends.append(at)
            at = find("\x02", at + 1)
        per_doc: dict[int, set[int]] = {}  # document index -> candidate topics
        limit = -1
        candidates: set[int] = set()
        # Hits come in text order, so each document's hits arrive together.
        for end, topics in self._anchors.iter(hay):
            if end > limit:
                index = bisect_right(ends, end)
                limit = ends[index]
                candidates = per_doc[index] = set()
            candidates.update(topics)
        scan = self._automaton.iter
        for index, candidates in per_doc.items():
            start = ends[index - 1] + 1 if index else 0
            # " title words \x01 text words \x02": single spaces, as phrase keys and
            # word positions need.
            text = _SPACES.sub(" ", hay[start : ends[index] + 1])
            hits: dict[int, list[int]] = {}
            for end, (key, length) in scan(text):
                offsets = hits.get(key)
                if offsets is None:
                    hits[key] = [end - length + 1]
                else:
                    offsets.append(end - length + 1)
            state = _Doc(text, 0, len(text), hits)
            yield from self._evaluate(docs[index], state, sorted(candidates))

    def _evaluate(
        self, doc: Document, state: _Doc, candidates: Sequence[int]
    ) -> Iterator[TopicMatch]:
        for index in candidates:
            topic = self._topics[index]
            if topic.test(state.hits, state.in_title, state):
                match = _explain(topic, doc, state)
                if match is not None:
                    yield match


# ---------------------------------------------------------------- explanation


def _explain(topic: _Topic, doc: Document, state: _Doc) -> TopicMatch | None:
    """The match with its score, terms and snippet; None when it scores below the minimum."""
    per_leaf = [(leaf, state.leaf_hits(leaf)) for leaf in topic.leaves]
    per_leaf = [(leaf, hits) for leaf, hits in per_leaf if hits]
    score = _score(per_leaf)
    if score < topic.min_score:
        return None
    terms = _terms(per_leaf, state)
    snippet, highlights = _snippet(per_leaf, doc, state)
    return TopicMatch(topic.name, doc.id, score, terms, snippet, highlights)


def _score(per_leaf: Sequence[tuple[_Leaf, list[_Hit]]]) -> float:
    total = 0.0
    for _, hits in per_leaf:
        total += _TITLE_WEIGHT if hits[0][0] == 0 else _BODY_WEIGHT
        total += _REPEAT_BONUS * min(len(hits) - 1, _MAX_REPEATS)
    closeness = 0.0
    for field in (0, 1):
        groups = [[h for h in hits if h[0] == field] for _, hits in per_leaf]
        groups = [g for g in groups if g]
        if len(groups) >= 2:
            k = len(groups)
            spread = max(0, _smallest_window(groups) - k)
            closeness = max(closeness, (1 - 1 / k) / (1 + spread / _SPREAD_SCALE))
    return round(total + closeness, 4)


def _smallest_window(groups: Sequence[Sequence[_Hit]]) -> int:
    """Width in words of the smallest window holding one hit from every group."""
    events = sorted((h[1], h[2], g) for g, hits in enumerate(groups) for h in hits)
    return _window_scan(events, len(groups))


def _window_scan(events: Sequence[tuple[int, int, int]], need: int) -> int:
    best = 1 << 30
    counts = [0] * need
    have = 0
    lo = 0
    for hi in range(len(events)):
        group = events[hi][2]
        counts[group] += 1
        if counts[group] == 1:
            have += 1
        while have == need:
            window_end = max(e[1] for e in events[lo : hi + 1])
            best = min(best, window_end - events[lo][0])
            g = events[lo][2]
            counts[g] -= 1
            if counts[g] == 0:
                have -= 1
            lo += 1
    return best


def _terms(per_leaf: Sequence[tuple[_Leaf, list[_Hit]]], state: _Doc) -> tuple[str, ...]:
    first: dict[str, tuple[int, int]] = {}
    for leaf, hits in per_leaf:
        for field, start, _ in hits:
            label = leaf.label
            if leaf.prefix:
                label = state.word(start)
            if label not in first or (field, start) < first[label]:
                first[label] = (field, start)
    return tuple(sorted(first, key=lambda label: (first[label], label)))


def _snippet(
    per_leaf: Sequence[tuple[_Leaf, list[_Hit]]], doc: Document, state: _Doc
) -> tuple[str, tuple[tuple[int, int], ...]]:
    in_text = any(h[0] == 1 for _, hits in per_leaf for h in hits)
    field = 1 if in_text and doc.text else 0
    source = doc.text if field else doc.title
    # Hits count words over title, break marker and text; make them field-relative.
    base = 0 if field == 0 else state.hay.count(" ", state.start, state.title_end)
    in_field = [
        (number, start - base, end - base - 1)
        for number, (_, hits) in enumerate(per_leaf)
        for f, start, end in hits
        if f == field and start >= base
    ]
    spans = word_bounds_at(source, [i for _, first, last in in_field for i in (first, last)])
    marks: list[tuple[int, int, int]] = []  # (char start, char end, leaf number)
    for number, first, last in in_field:
        if first in spans and last in spans:
            marks.append((spans[first][0], spans[last][1], number))
    marks.sort()
    if not marks:
        return _clip(source, 0, min(len(source), SNIPPET_CHARS)), ()
    lo, hi = _densest(marks)
    win_start, win_end = marks[lo][0], max(m[1] for m in marks[lo : hi + 1])
    room = max(0, SNIPPET_CHARS - (win_end - win_start))
    start = max(0, win_start - room // 2)
    end = min(len(source), max(win_end, start + SNIPPET_CHARS))
    start = max(0, min(start, end - SNIPPET_CHARS))
    start, end = _snap(source, start, end, win_start, win_end)
    snippet = _clip(source, start, end)
    shift = start - (1 if start > 0 else 0)
    highlights = tuple(
        (s - shift, e - shift) for s, e in _disjoint(marks) if s >= start and e <= end
    )
    return snippet, highlights


def _densest(marks: Sequence[tuple[int, int, int]]) -> tuple[int, int]:
    """The run of marks fitting in a snippet with the most distinct words, then most hits."""
    best = (0, 0, 0, 0)
    for lo in range(len(marks)):
        hi = lo
        while hi + 1 < len(marks) and marks[hi + 1][1] - marks[lo][0] <= SNIPPET_CHARS:
            hi += 1
        distinct = len({m[2] for m in marks[lo : hi + 1]})
        key = (distinct, hi - lo + 1)
        if key > best[:2]:
            best = (distinct, hi - lo + 1, lo, hi)
    return best[2], best[3]


def _disjoint(marks: Sequence[tuple[int, int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for s, e, _ in marks:
        if merged and s < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def _snap(text: str, start: int, end: int, keep_start: int, keep_end: int) -> tuple[int, int]:
    """Move the cut points to whitespace so no word is cut, never past the kept window."""
    if start > 0 and not text[start - 1].isspace():
        space = text.find(" ", start, keep_start)
        start = space + 1 if space >= 0 else start
    if end < len(text) and not text[end].isspace():
        space = text.rfind(" ", keep_end, end)
        end = space if space >= 0 else end
    return start, end


def _clip(text: str, start: int, end: int) -> str:
    # A regex, not str.translate: translating non-ASCII text goes character by character.
    body = _LINE_BREAKS.sub(" ", text[start:end])
    return ("…" if start > 0 else "") + body + ("…" if end < len(text) else "")
