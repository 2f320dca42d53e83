"""Deterministic generator of realistic news feeds for the benchmarks.

`generate()` writes N feeds (RSS 2.0 and Atom mixed, ~50 entries, 30-80 KB each)
plus a `manifest.json`; `mutate()` writes a second set in which a fraction of the
feeds gained new entries at the top, for the "10% changed" poll. Feed *i* depends
only on the seed, the anchor date and *i*, so the 200-feed set is a prefix of the
1,000-feed set and two machines generate the same bytes.

What makes the feeds realistic enough to exercise a pipeline:
- HTML summaries with paragraphs, links, images, and script/iframe junk to sanitise;
- tracking parameters (utm_*, fbclid) on a share of the links;
- wire stories syndicated across several feeds under different URLs and slightly
  different titles (dedupe and story clustering have work);
- a lede of each story's own (who, what, how many, where, when) before sentences of
  boilerplate that every outlet repeats: copies share a lede, different stories only
  phrases and boilerplate, as in real feeds (`bench/cluster_quality.py` checks the
  stories clustering finds against the generator's);
- Middle-East news vocabulary, with a small fraction of entries that match an
  "Israel-Turkey deconfliction in Syria" topic;
- dates spread over the last three days before the anchor.

Usage: `python -m bench.gen_feeds OUT_DIR --n 1000 [--seed 7] [--mutate 0.1]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import random
from dataclasses import asdict, dataclass
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

ENTRIES_PER_FEED = 50
SYNDICATED_SHARE = 0.12  # of a feed's entries that come from the shared wire pool
TOPIC_SHARE = 0.03  # of entries that match the Israel-Turkey-Syria topic
WIRE_POOL = 400  # wire stories shared across feeds
NEW_ENTRIES_ON_MUTATE = 5
FEED_PATH = "/f/{index:05d}.xml"

COUNTRIES = [
    "Israel", "Turkey", "Syria", "Iran", "Iraq", "Lebanon", "Jordan", "Egypt",
    "Saudi Arabia", "Qatar", "the UAE", "Yemen", "Cyprus", "Greece", "Russia",
    "the United States", "Azerbaijan", "Armenia", "Kuwait", "Oman",
]  # fmt: skip
CITIES = [
    "Damascus", "Aleppo", "Idlib", "Ankara", "Istanbul", "Jerusalem", "Tel Aviv",
    "Beirut", "Baghdad", "Erbil", "Tehran", "Amman", "Cairo", "Gaza", "Haifa",
    "Deir ez-Zor", "Raqqa", "Qamishli", "Latakia", "Homs", "Sulaymaniyah", "Doha",
]  # fmt: skip
ACTORS = [
    "the foreign ministry", "the defence minister", "army officials", "the cabinet",
    "opposition leaders", "UN envoys", "Kurdish officials", "security sources",
    "the central bank", "parliament", "aid agencies", "the prime minister",
    "diplomats", "energy ministers", "the president's office", "militia commanders",
]  # fmt: skip
VERBS = [
    "warns", "rejects", "backs", "weighs", "announces", "condemns", "signals",
    "denies", "confirms", "urges", "delays", "approves", "questions", "prepares",
]  # fmt: skip
SUBJECTS = [
    "new sanctions", "a ceasefire proposal", "border security talks", "gas pipeline plans",
    "an aid corridor", "water-sharing deal", "election timetable", "currency reforms",
    "refugee returns", "drone strikes", "reconstruction funds", "oil export quotas",
    "a prisoner exchange", "airspace restrictions", "trade tariffs", "troop deployments",
    "a port agreement", "wheat imports", "electricity cuts", "a cabinet reshuffle",
]  # fmt: skip
TOPIC_TITLES = [
    "Israel and Turkey set up deconfliction hotline over Syria air operations",
    "Turkish and Israeli militaries discuss deconfliction in Syrian airspace",
    "Israeli officials say coordination with Türkiye in Syria avoids military friction",
    "Turkey, Israel hold technical talks on deconfliction mechanism in Syria",
    "Analysts: Israel-Turkey military friction in Syria rises despite coordination",
]  # fmt: skip
FILLER = (
    (
        "Officials spoke on condition of anonymity because they were not authorised to brief "
        "the media. The talks come amid rising tension along the border and a sharp fall in "
        "the local currency. Residents described long queues for bread and fuel, while aid "
        "groups said access to the worst-hit districts remained limited. Analysts said the "
        "move was aimed at domestic audiences ahead of next year's elections, and that "
        "regional powers were watching closely. A spokesperson declined to comment on the "
        "timing of the announcement, saying only that consultations were continuing."
    )
    .rstrip(".")
    .split(". ")
)
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
GROUPS = [
    "civilians", "soldiers", "fighters", "workers", "protesters", "students", "migrants",
    "officials", "families", "villagers", "police officers", "detainees",
]  # fmt: skip
FATES = [
    "killed", "wounded", "detained", "displaced", "evacuated", "released", "injured",
    "arrested", "rescued", "stranded",
]  # fmt: skip
ATTRIBUTIONS = [
    "local officials said", "a war monitor reported", "state media reported",
    "according to the health ministry", "witnesses told reporters", "the army said",
    "rescue teams said", "according to a UN statement", "hospital sources said",
]  # fmt: skip
SPEAKERS = [
    "Governor", "Spokesman", "Minister", "General", "Mayor", "Commander", "Envoy",
    "Deputy", "Senator", "Ambassador",
]  # fmt: skip
SURNAMES = [
    "Haddad", "Yilmaz", "Cohen", "Khoury", "Demir", "Levi", "Nasser", "Kaya", "Saleh",
    "Aydin", "Mizrahi", "Hamdan", "Ozturk", "Barak", "Rahimi", "Mansour", "Celik",
    "Friedman", "Darwish", "Sahin",
]  # fmt: skip
THINGS = [
    "checkpoints", "trucks", "drones", "rockets", "shelters", "convoys", "villages",
    "schools", "wells", "bridges", "clinics", "flights",
]  # fmt: skip
STATES = [
    "reopened", "closed", "destroyed", "seized", "repaired", "searched", "blocked",
    "abandoned", "inspected", "rebuilt",
]  # fmt: skip
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
]  # fmt: skip
DEMANDS = [
    "an independent inquiry", "urgent talks", "calm", "more aid", "a ceasefire",
    "international monitors", "compensation", "new elections", "restraint",
    "an emergency session",
]  # fmt: skip
FIRST_NAMES = [
    "Ahmed", "Mehmet", "David", "Omar", "Ayse", "Yosef", "Layla", "Murat", "Rania",
    "Eitan", "Khaled", "Zeynep", "Nadia", "Avi", "Hassan", "Elif", "Samir", "Noa",
    "Karim", "Fatma", "Tamar", "Yusuf", "Mariam", "Emre", "Ali", "Dalia", "Burak",
    "Rami", "Shira", "Hana",
]  # fmt: skip
UNITS = [
    "Division", "Brigade", "Regiment", "Battalion", "Corps", "Commando Unit",
    "Border Guard", "Civil Defence Directorate", "Relief Committee", "Water Authority",
]  # fmt: skip
PLACE_PREFIXES = [
    "Kafr", "Tal", "Ain", "Beit", "Deir", "Jabal", "Wadi", "Khirbet", "Ras", "Umm",
    "Bir", "Qasr", "Marj", "Tell", "Nahr",
]  # fmt: skip
SYLLABLES = [
    "ab", "ba", "dar", "el", "fa", "ga", "ha", "ja", "ka", "lu", "ma", "na", "qa", "ra",
    "sa", "ta", "wa", "ya", "za", "mir", "tun", "shi", "kor", "han", "bel", "dun", "sur",
    "am", "ir", "ul",
]  # fmt: skip
OUTLET_WORDS = [
    "Daily", "Herald", "Monitor", "Observer", "Times", "Post", "Review", "Wire",
    "Gazette", "Tribune", "Courier", "Eye", "Report", "News", "Dispatch", "Chronicle",
]  # fmt: skip
SECTIONS = ["world", "middle-east", "politics", "economy", "region", "news", "security"]


@dataclass(frozen=True)
class FeedInfo:
    """One generated feed: where it lives and how the server serves it."""

    index: int
    path: str  # URL path on the feed server, e.g. /f/00042.xml
    host_index: int  # which loopback address serves it (127.0.0.<2 + host_index>)
    kind: str  # "rss" or "atom"
    title: str
    size: int
    changed: bool = False  # True in a mutated set when this feed gained entries


@dataclass(frozen=True)
class _Story:
    title: str
    sentences: list[str]  # the story's own two-sentence lede, then a boilerplate sentence
    published: dt.datetime
    wire_id: int | None


def anchor_now() -> dt.datetime:
    """Today's midnight UTC: stable within a day, yet dates stay recent."""
    today = dt.datetime.now(dt.UTC).date()
    return dt.datetime(today.year, today.month, today.day, tzinfo=dt.UTC)


def _slug(text: str) -> str:
    out = "".join(c.lower() if c.isascii() and c.isalnum() else "-" for c in text)
    return "-".join(p for p in out.split("-") if p)[:80]


def _headline(rng: random.Random) -> str:
    place = rng.choice(COUNTRIES + CITIES)
    return f"{place}: {rng.choice(ACTORS)} {rng.choice(VERBS)} {rng.choice(SUBJECTS)}".replace(
        ": the", ": The"
    )


def _village(rng: random.Random) -> str:
    """A place name of the kind a lede names: 1 in ~100,000, as real village names are."""
    word = "".join(rng.choices(SYLLABLES, k=rng.randint(2, 3)))
    return f"{rng.choice(PLACE_PREFIXES)} {word.capitalize()}"


def _sentences(rng: random.Random) -> list[str]:
    """A story's lede (two sentences of its own: who, what, how many, where, when,
    with the names of people, places and units only it mentions) and a boilerplate
    sentence. Copies of a story share its lede; two stories share common phrases
    ("on Monday after", "were killed in") and boilerplate, as two real reports do.
    """
    first = (
        f"{rng.choice(ACTORS).capitalize()} {rng.choice(VERBS)} {rng.choice(SUBJECTS)} "
        f"on {rng.choice(WEEKDAYS)} after {rng.randrange(2, 400)} {rng.choice(GROUPS)} "
        f"were {rng.choice(FATES)} in {_village(rng)}, {rng.randrange(3, 90)} km from "
        f"{rng.choice(CITIES)}, {rng.choice(ATTRIBUTIONS)}"
    )
    second = (
        f"{rng.choice(SPEAKERS)} {rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)} of the "
        f"{rng.randrange(1, 99)}th {rng.choice(UNITS)} said {rng.randrange(2, 90)} "
        f"{rng.choice(THINGS)} had been {rng.choice(STATES)} near {_village(rng)} since "
        f"{rng.choice(MONTHS)} {rng.randrange(1, 29)} and called for {rng.choice(DEMANDS)}"
    )
    return [first, second, rng.choice(FILLER)]


def _wire_pool(seed: int, anchor: dt.datetime) -> list[_Story]:
    rng = random.Random(seed * 7919 + 1)
    pool = []
    for wid in range(WIRE_POOL):
        title = rng.choice(TOPIC_TITLES) if rng.random() < 0.05 else _headline(rng)
        published = anchor - dt.timedelta(seconds=rng.randrange(3 * 86400))
        pool.append(_Story(title, _sentences(rng), published, wid))
    return pool


def _variant_title(title: str, rng: random.Random, outlet: str) -> str:
    """The same wire story as another outlet titles it."""
    roll = rng.random()
    if roll < 0.25:
        return f"{title} - {outlet}"
    if roll < 0.45:
        return f"UPDATE: {title}"
    if roll < 0.6:
        return title.replace(":", " -", 1)
    if roll < 0.7:
        return title.upper() if rng.random() < 0.3 else title.lower().capitalize()
    return title


def _link(rng: random.Random, domain: str, section: str, published: dt.datetime, title: str) -> str:
    url = f"https://{domain}/{section}/{published:%Y/%m/%d}/{_slug(title)}-{rng.randrange(10**6)}"
    roll = rng.random()
    if roll < 0.2:
        url += "?utm_source=rss&utm_medium=feed&utm_campaign=world"
    elif roll < 0.3:
        url += f"?fbclid=IwAR{rng.randrange(16**12):012x}"
    elif roll < 0.35:
        url += f"?id={rng.randrange(10**5)}&utm_source=twitter&utm_medium=social"
    return url


def _summary_html(
    rng: random.Random, story: _Story, domain: str, link: str, richness: float
) -> str:
    """A summary with the usual mix: paragraphs, links, an image, sometimes junk.

    `richness` (0-1, per feed) sets how wordy the outlet is: feeds span 30-80 KB.
    """
    # The story's own sentences come first, so syndicated copies share their lede.
    lede = ". ".join(story.sentences[: 1 + (rng.random() < richness)])
    parts = [f"<p><strong>{escape(rng.choice(CITIES))}</strong> — {escape(lede)}.</p>"]
    if rng.random() < 0.1 + 0.8 * richness:
        cdn = domain.replace("www.", "cdn.", 1)
        parts.append(
            f'<p><img src="https://{cdn}/img/{rng.randrange(10**7)}.jpg?w=640" '
            f'alt="{escape(rng.choice(CITIES))}" width="640" height="360" /></p>'
        )
    for _ in range(2):
        if rng.random() < richness:
            parts.append(f"<p>{escape(rng.choice(FILLER))}.</p>")
    if rng.random() < 0.2 + 0.8 * richness:
        parts.append(
            f'<p>Read more at <a href="{escape(link)}" target="_blank">{escape(domain)}</a>.</p>'
        )
    if rng.random() < 0.3:
        parts.append(
            f'<p>Related: <a href="https://{domain}/tag/{_slug(rng.choice(COUNTRIES))}'
            '?utm_source=rss&amp;utm_medium=feed">more coverage</a></p>'
        )
    if rng.random() < 0.15:
        parts.append('<script type="text/javascript">window.ga&&ga("send","event","rss");</script>')
    if rng.random() < 0.1:
        parts.append(
            f'<iframe src="https://www.youtube.example/embed/{rng.randrange(10**8)}" '
            'width="560" height="315" frameborder="0" allowfullscreen></iframe>'
        )
    if rng.random() < 0.1:
        parts.append('<div style="display:none" onclick="track()">tracking pixel</div>')
    return "\n".join(parts)


def _entries(
    index: int, seed: int, anchor: dt.datetime, pool: list[_Story], outlet: str, extra: int = 0
) -> list[tuple[_Story, str, str]]:
    """The feed's entries, newest first: (story, title as published, link)."""
    rng = random.Random(seed * 1_000_003 + index)
    domain = f"www.{_slug(outlet)}.example"
    stories = []
    for _ in range(ENTRIES_PER_FEED):
        roll = rng.random()
        if roll < SYNDICATED_SHARE:
            story = rng.choice(pool)
        elif roll < SYNDICATED_SHARE + TOPIC_SHARE:
            published = anchor - dt.timedelta(seconds=rng.randrange(3 * 86400))
            story = _Story(rng.choice(TOPIC_TITLES), _sentences(rng), published, None)
        else:
            published = anchor - dt.timedelta(seconds=rng.randrange(3 * 86400))
            story = _Story(_headline(rng), _sentences(rng), published, None)
        stories.append(story)
    # New entries for a mutated feed: an hour after the anchor, so they sort first.
    mrng = random.Random(seed * 1_000_033 + index)
    for k in range(extra):
        published = anchor + dt.timedelta(minutes=60 + k)
        stories.append(_Story(_headline(mrng), _sentences(mrng), published, None))
    stories.sort(key=lambda s: s.published, reverse=True)
    stories = stories[:ENTRIES_PER_FEED]
    out = []
    for story in stories:
        srng = random.Random(f"{seed}/{index}/{story.title}/{story.published.isoformat()}")
        title = (
            _variant_title(story.title, srng, outlet) if story.wire_id is not None else story.title
        )
        link = _link(srng, domain, srng.choice(SECTIONS), story.published, title)
        out.append((story, title, link))
    return out


def _outlet(index: int, seed: int) -> str:
    rng = random.Random(seed * 31 + index)
    city = rng.choice(CITIES).split()[0].replace("-", " ")
    return f"{city} {rng.choice(OUTLET_WORDS)} {index}"


def render_feed(
    index: int, seed: int, anchor: dt.datetime, pool: list[_Story], extra: int = 0
) -> tuple[str, bytes]:
    """Feed *index* as (kind, bytes); `extra` new entries are pushed on top."""
    outlet = _outlet(index, seed)
    kind = "atom" if index % 3 == 1 else "rss"
    domain = f"www.{_slug(outlet)}.example"
    entries = _entries(index, seed, anchor, pool, outlet, extra)
    rng = random.Random(seed * 1_000_039 + index)
    richness = random.Random(seed * 1_000_037 + index).random()
    updated = entries[0][0].published
    if kind == "rss":
        items = []
        for story, title, link in entries:
            summary = _summary_html(rng, story, domain, link, richness)
            guid_is_link = rng.random() < 0.5
            guid = (
                link
                if guid_is_link
                else f"{_slug(outlet)}-{_slug(title)[:40]}-{story.published:%Y%m%d%H%M%S}"
            )
            categories = "".join(
                f"<category>{escape(c)}</category>" for c in rng.sample(COUNTRIES, 2)
            )
            items.append(
                "<item>"
                f"<title>{escape(title)}</title>"
                f"<link>{escape(link)}</link>"
                f'<guid isPermaLink="{"true" if guid_is_link else "false"}">{escape(guid)}</guid>'
                f"<pubDate>{format_datetime(story.published)}</pubDate>"
                f"<dc:creator>{escape(rng.choice(ACTORS).title())} Desk</dc:creator>"
                f"{categories}"
                f"<description><![CDATA[{summary}]]></description>"
                "</item>"
            )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>'
            f"<title>{escape(outlet)}</title><link>https://{domain}/</link>"
            f"<description>Latest news from {escape(outlet)}</description>"
            f"<language>en</language><lastBuildDate>{format_datetime(updated)}</lastBuildDate>"
            f'<atom:link href="https://{domain}/rss" rel="self" type="application/rss+xml"/>\n'
            + "\n".join(items)
            + "\n</channel>\n</rss>\n"
        )
    else:
        items = []
        for story, title, link in entries:
            summary = _summary_html(rng, story, domain, link, richness)
            stamp = story.published.isoformat().replace("+00:00", "Z")
            items.append(
                "<entry>"
                f'<title type="html">{escape(title)}</title>'
                f'<link rel="alternate" type="text/html" href={quoteattr(link)}/>'
                f"<id>tag:{domain},{story.published:%Y-%m-%d}:{_slug(title)[:60]}</id>"
                f"<published>{stamp}</published><updated>{stamp}</updated>"
                f"<author><name>{escape(rng.choice(ACTORS).title())} Desk</name></author>"
                f'<summary type="html">{escape(summary)}</summary>'
                "</entry>"
            )
        body = (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">'
            f"<title>{escape(outlet)}</title>"
            f'<link rel="alternate" href="https://{domain}/"/>'
            f'<link rel="self" href="https://{domain}/atom"/>'
            f"<id>https://{domain}/</id>"
            f"<updated>{updated.isoformat().replace('+00:00', 'Z')}</updated>\n"
            + "\n".join(items)
            + "\n</feed>\n"
        )
    return kind, body.encode("utf-8")


def generate(
    out_dir: Path,
    n: int,
    *,
    seed: int = 7,
    hosts: int = 20,
    anchor: dt.datetime | None = None,
    mutate_fraction: float = 0.1,
) -> list[FeedInfo]:
    """Write N feeds to `out_dir/base/` and their mutated set to `out_dir/mutated/`.

    Also writes `out_dir/manifest.json` (seed, anchor, hosts, feeds). Returns the base
    set's feeds. Rewrites nothing when the manifest already matches the arguments and this
    generator's source.
    """
    anchor = anchor or anchor_now()
    manifest_path = out_dir / "manifest.json"
    key = {
        "n": n,
        "seed": seed,
        "hosts": hosts,
        "anchor": anchor.isoformat(),
        "mutate": mutate_fraction,
        # Feeds written by another version of this generator are not reused.
        "generator": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16],
    }
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old.get("key") == key:
            return [FeedInfo(**f) for f in old["feeds"]]
    pool = _wire_pool(seed, anchor)
    feeds = []
    (out_dir / "base").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        kind, body = render_feed(i, seed, anchor, pool)
        path = FEED_PATH.format(index=i)
        (out_dir / "base" / Path(path).name).write_bytes(body)
        feeds.append(FeedInfo(i, path, i % hosts, kind, _outlet(i, seed), len(body)))
    mutated = mutate(out_dir, feeds, fraction=mutate_fraction, seed=seed, anchor=anchor, pool=pool)
    manifest_path.write_text(
        json.dumps(
            {
                "key": key,
                "feeds": [asdict(f) for f in feeds],
                "changed": [f.index for f in mutated if f.changed],
            },
            indent=1,
        )
    )
    return feeds


def story_truth(n: int, seed: int, anchor: dt.datetime) -> dict[str, object]:
    """The story of each entry of `generate(..., n, seed=seed, anchor=anchor)`, by link:
    ("wire", id) for the copies of one wire story, else (feed index, position): the
    stories a clustering of the feeds should find."""
    pool = _wire_pool(seed, anchor)
    truth: dict[str, object] = {}
    for index in range(n):
        outlet = _outlet(index, seed)
        for position, (story, _, link) in enumerate(_entries(index, seed, anchor, pool, outlet)):
            truth[link] = (index, position) if story.wire_id is None else ("wire", story.wire_id)
    return truth


def changed_indexes(n: int, fraction: float, seed: int) -> set[int]:
    """Which feeds a mutation touches: exactly `fraction` of each block of 100.

    A seeded sample per block, so the choice for the first 200 feeds is the same in
    the 200- and the 1,000-feed sets, and changed feeds are spread over all hosts.
    """
    chosen: set[int] = set()
    per_block = round(fraction * 100)
    for start in range(0, n, 100):
        block = random.Random(seed * 104_729 + start).sample(range(start, start + 100), per_block)
        chosen.update(i for i in block if i < n)
    return chosen


def mutate(
    out_dir: Path,
    feeds: list[FeedInfo],
    *,
    fraction: float = 0.1,
    seed: int = 7,
    anchor: dt.datetime | None = None,
    pool: list[_Story] | None = None,
) -> list[FeedInfo]:
    """Write `out_dir/mutated/`: `fraction` of the feeds gain new entries on top.

    Unchanged feeds are copies of the base files, byte for byte,
    so the server gives them the same ETag and they answer 304.
    """
    anchor = anchor or anchor_now()
    pool = pool if pool is not None else _wire_pool(seed, anchor)
    chosen = changed_indexes(len(feeds), fraction, seed)
    target = out_dir / "mutated"
    target.mkdir(parents=True, exist_ok=True)
    out = []
    for f in feeds:
        name = Path(f.path).name
        dest = target / name
        dest.unlink(missing_ok=True)
        if f.index in chosen:
            _, body = render_feed(f.index, seed, anchor, pool, extra=NEW_ENTRIES_ON_MUTATE)
            dest.write_bytes(body)
            out.append(FeedInfo(f.index, f.path, f.host_index, f.kind, f.title, len(body), True))
        else:
            dest.write_bytes((out_dir / "base" / name).read_bytes())
            out.append(f)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--mutate", type=float, default=0.1, help="fraction changed in mutated/")
    args = parser.parse_args()
    feeds = generate(
        args.out_dir, args.n, seed=args.seed, hosts=args.hosts, mutate_fraction=args.mutate
    )
    sizes = sorted(f.size for f in feeds)
    print(
        f"{len(feeds)} feeds in {args.out_dir}: "
        f"{sum(f.kind == 'atom' for f in feeds)} Atom, "
        f"sizes {sizes[0] // 1024}-{sizes[-1] // 1024} KB, "
        f"median {sizes[len(sizes) // 2] // 1024} KB"
    )


if __name__ == "__main__":
    main()
