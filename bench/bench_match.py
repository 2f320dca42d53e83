"""Benchmark the matching step: 100 topics of 3-10 terms against 50,000 articles.

Run with `uv run python bench/bench_match.py`. Articles and topics are generated from
a fixed seed (a Zipf-like vocabulary of English news words, typographic punctuation and some
Turkish and Arabic text), so runs are comparable; only `Matcher.match_many` is timed, on one core,
as CPU time of this process (so other load on a shared machine does not count).
Target: at least 100,000 articles per second.
"""

from __future__ import annotations

import random
import time

from watch.matcher import Document, Matcher, TopicSpec

SEED = 20261125
TOPICS = 100
ARTICLES = 50_000
RUNS = 3


def _words(text: str) -> list[str]:
    return text.split()


NEWS_WORDS = _words(
    "israel turkey syria russia iran iraq kurds damascus ankara moscow washington army "
    "military forces troops talks agreement deal coordination deconfliction strike "
    "strikes airstrike base drone drones defence defense minister president government "
    "officials report border security ceasefire negotiations hotline meeting summit trade "
    "economy inflation election parliament court police protest earthquake aid refugees "
    "camp hospital pipeline energy prices football league coach players season market "
    "stocks technology startup investment weather storm flood record province capital"
)
FILLER = _words(
    "the a of to in and on for is that by as at with was were it its an be has have said "
    "says after before during amid over between against from into about under new first "
    "last week month year today people city region north south east west"
)
TURKISH = _words("Türkiye İsrail Suriye'de askerî koordinasyon görüşmeleri Ankara'da yapıldı")
ARABIC = _words("إسرائيل وتركيا تتفقان على آلية لمنع الاشتباك في سوريا")
SYLLABLES = _words("ka lo mi su re ta ne vo pi da ru se li mo ga ze bo ti na fe")


def make_vocabulary(rng: random.Random) -> list[str]:
    """News words first, then 20,000 made-up words: a realistic article vocabulary."""
    made_up = {
        "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(24_000)
    }
    return NEWS_WORDS + sorted(made_up - set(NEWS_WORDS))[:20_000]


def _word(rng: random.Random, vocab: list[str]) -> str:
    # Zipf-like: half the running words are function words; content words follow a
    # power law, so a few are common and most are rare.
    if rng.random() < 0.5:
        return rng.choice(FILLER)
    index = min(int(rng.paretovariate(0.6)) - 1, len(vocab) - 1)
    return vocab[index]


def _sentence(rng: random.Random, vocab: list[str], n: int) -> str:
    words = [_word(rng, vocab) for _ in range(n)]
    return " ".join(w.capitalize() if rng.random() < 0.1 else w for w in words)


def make_articles(rng: random.Random, vocab: list[str]) -> list[Document]:
    docs: list[Document] = []
    for i in range(ARTICLES):
        title = _sentence(rng, vocab, rng.randint(6, 12)).capitalize()
        body = ". ".join(
            _sentence(rng, vocab, rng.randint(8, 20)) for _ in range(rng.randint(2, 4))
        )
        roll = rng.random()
        if roll < 0.05:
            body += " " + " ".join(rng.sample(TURKISH, 5))
        elif roll < 0.08:
            body += " " + " ".join(rng.sample(ARABIC, 5))
        elif roll < 0.4:
            # English feeds are full of typographic quotes and dashes.
            body += " \u2014 officials\u2019 \u201cstatement\u201d"
        docs.append(Document(i, title, body + "."))
    return docs


def make_topics(rng: random.Random, vocab: list[str]) -> list[TopicSpec]:
    # Topic words are content words of any frequency, like real watch terms.
    vocab = vocab[:3000] + [w.strip("'").lower() for w in TURKISH]
    topics: list[TopicSpec] = []
    for t in range(TOPICS):
        terms = rng.sample(vocab, rng.randint(3, 10))
        groups: list[str] = []
        while terms:
            size = min(len(terms), rng.randint(1, 3))
            group, terms = terms[:size], terms[size:]
            groups.append("(" + " OR ".join(group) + ")" if len(group) > 1 else group[0])
        shape = t % 5
        if shape == 1 and len(groups) > 1:
            groups[-1] = "-" + groups[-1]
        elif shape == 2 and len(groups) > 1:
            groups[0] = f"{groups[0]} NEAR/5 {groups.pop(1)}"
        elif shape == 3:
            groups[0] = f"title:{groups[0]}"
        elif shape == 4:
            groups[0] = groups[0].replace(")", "").replace("(", "")[:5].split()[0] + "*"
            if len(groups[0]) < 4:
                groups[0] = "deconflict*"
        topics.append(TopicSpec(f"topic {t}", " AND ".join(groups)))
    return topics


def main() -> None:
    rng = random.Random(SEED)
    vocab = make_vocabulary(rng)
    topics = make_topics(rng, vocab)
    docs = make_articles(rng, vocab)
    matcher = Matcher.compile(topics)
    chars = sum(len(d.title) + len(d.text) for d in docs) / len(docs)
    for _ in matcher.match_many(docs[:2000]):  # fill the lazy fold tables before timing
        pass
    timings: list[float] = []
    matches = 0
    walls: list[float] = []
    for _ in range(RUNS):
        wall, cpu = time.perf_counter(), time.process_time()
        matches = sum(1 for _ in matcher.match_many(docs))
        timings.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    best = min(timings)
    matched_docs = len({m.doc_id for m in matcher.match_many(docs)})
    print(f"{TOPICS} topics, {len(docs):,} articles of {chars:.0f} characters on average")
    print(f"{matches:,} matches; {matched_docs / len(docs):.1%} of articles match a topic")
    print(f"matching, best of {RUNS}: {best:.2f} s CPU, {len(docs) / best:,.0f} articles/s")
    print(f"(wall clock {min(walls):.2f} s: {len(docs) / min(walls):,.0f} articles/s)")


if __name__ == "__main__":
    main()
