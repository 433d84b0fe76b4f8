"""News-sentiment agent: scores financial headlines in [-1, 1] and turns recent ones into an Insight.

A headline's score comes from two parts that are blended by a small ridge model:
- a hand-built finance/crypto lexicon (sentiment_lexicon.py) read with negation, intensifiers,
  "but"/"despite" clauses and direction x object composition ("losses narrow" is good news);
- word and bigram weights learned on the SemEval-2017 Task 5 development headlines by
  bench/train_sentiment.py, shipped in sentiment_model.json and loaded once at import.

Everything here is pure: no network and no file I/O at call time.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from importlib import resources

import msgspec
import numpy as np

from workers.agents import sentiment_lexicon as lex
from workers.agents.insight import AgentName, Headline, Insight

# News moves crypto within hours: a headline counts half after 6 h, a quarter after 12 h.
HALF_LIFE_MS = 6 * 3600 * 1000
# Older headlines carry < 2^-28 of a fresh one's weight; skipping them keeps the sum clean.
MAX_AGE_MS = 7 * 24 * 3600 * 1000
# Headlines that name the traded asset count this much more than general market news.
MENTION_BOOST = 2.0
# Total recency weight at which confidence from volume reaches ~63% (1 - 1/e).
CONFIDENCE_WEIGHT_SCALE = 3.0

_COMPOUND_ALPHA = 16.0  # s / sqrt(s^2 + alpha): one strong word (valence 3) reads as 0.6
_NEGATION_FACTOR = -0.74  # VADER's value: a negated word keeps part of its strength, flipped
_NEGATION_WINDOW = 3
_INTENSIFIER_WINDOW = 2
_PAIR_WINDOW = 3
# "Costs cut" or "losses narrow" is good news, but readers rate it milder than a plain "profit rises".
_BAD_REDUCED_FACTOR = 0.7


def stem(word: str) -> str:
    """Light suffix stripping so `plunges`, `plunged` and `plunging` meet `plunge` in the lexicon."""
    w = word
    if len(w) <= 3:
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith("ied") and len(w) > 4:
        return w[:-3] + "y"
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]
            break
    else:
        if w.endswith(("sses", "shes", "ches", "xes")):
            w = w[:-2]
        elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    return w


def _stem_keys(table: dict[str, float | int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for word, value in table.items():
        key = stem(word)
        # Where two listed forms share a stem, the stronger reading wins.
        if key not in out or abs(value) > abs(out[key]):
            out[key] = float(value)
    return out


_VALENCE = _stem_keys(lex.VALENCE)
_DIRECTION = {k: int(v) for k, v in _stem_keys(lex.DIRECTION).items()}
_OBJECT = {k: int(v) for k, v in _stem_keys(lex.OBJECT).items()}
_NEGATIONS = frozenset(stem(w) for w in lex.NEGATIONS)
_INTENSIFIERS = _stem_keys(lex.INTENSIFIERS)
_CONTRAST_AFTER = frozenset(stem(w) for w in lex.CONTRAST_AFTER)
_CONCESSIVE = frozenset(stem(w) for w in lex.CONCESSIVE)
_TRANSITIVE_STEMS = frozenset(stem(w) for w in lex.TRANSITIVE)
_REMOVAL = frozenset(stem(w) for w in lex.REMOVAL)
_BAD_EVENT = frozenset(stem(w) for w in lex.BAD_EVENT)
_CLAUSE_WORDS = frozenset(stem(w) for w in lex.CLAUSE_WORDS)
_PHRASES = {tuple(stem(w) for w in phrase): value for phrase, value in lex.PHRASES.items()}
_PHRASE_MAX = max(len(p) for p in _PHRASES)

_TOKEN_RE = re.compile(r"[a-z0-9$%]+(?:[-'][a-z0-9]+)*|[,;:!?|]|\s-\s")
_BREAKS = frozenset({",", ";", ":", "!", "?", "|", "-"})


def tokenize(title: str) -> list[list[str]]:
    """Lower-cased stems, split into clauses at punctuation and dashes."""
    text = title.lower().replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"n't\b", " not", text)
    text = re.sub(r"'s\b", "", text)
    clauses: list[list[str]] = [[]]
    for match in _TOKEN_RE.finditer(text):
        token = match.group().strip()
        if token in _BREAKS:
            if clauses[-1]:
                clauses.append([])
            continue
        token = token.strip("'")
        parts = [token]
        if "-" in token and stem(token) not in _VALENCE:
            parts = [p for p in token.split("-") if p]
        # Amounts ("$5bn", "25%", "2800") carry no direction; dropping them keeps word windows tight.
        clauses[-1].extend(stem(p) for p in parts if not p[0].isdigit() and p[0] != "$")
    return [c for c in clauses if c]


class LexiconReading(msgspec.Struct, frozen=True):
    """The lexicon's view of one headline: summed positive and negative valence, and their balance."""

    positive: float
    negative: float
    hits: int

    @property
    def compound(self) -> float:
        total = self.positive + self.negative
        return total / math.sqrt(total * total + _COMPOUND_ALPHA)


def _window(stems: list[str], i: int, step: int) -> list[int]:
    """Up to _PAIR_WINDOW positions beside i, stopping at a clause word ("drops as lawsuit looms")."""
    out: list[int] = []
    k = i + step
    while 0 <= k < len(stems) and len(out) < _PAIR_WINDOW:
        if stems[k] in _CLAUSE_WORDS and not (stems[i] in _REMOVAL and stems[k] in ("after", "from")):
            break
        out.append(k)
        k += step
    return out


def _clause_valences(stems: list[str]) -> tuple[list[float], int]:
    n = len(stems)
    valence = [0.0] * n
    consumed = [False] * n
    # 1. Multi-word expressions, longest first.
    i = 0
    while i < n:
        for size in range(min(_PHRASE_MAX, n - i), 1, -1):
            value = _PHRASES.get(tuple(stems[i : i + size]))
            if value is not None:
                valence[i] = value
                for k in range(i, i + size):
                    consumed[k] = True
                i += size - 1
                break
        i += 1
    paired_with: dict[int, int] = {}
    # 2. Removal: "SEC drops lawsuit", "avoids bankruptcy", "recovers from outage" are good news.
    for i, s in enumerate(stems):
        if s not in _REMOVAL or consumed[i]:
            continue
        j = next((k for k in _window(stems, i, +1) if not consumed[k] and stems[k] in _BAD_EVENT), None)
        if j is not None:
            valence[i] = _BAD_REDUCED_FACTOR * max(abs(_VALENCE.get(stems[j], 0.0)), 1.5)
            consumed[i] = consumed[j] = True
            paired_with[i] = j
    # 3. Direction x object: "profit falls" is bad, "cuts costs" and "losses narrow" are good.
    for i, s in enumerate(stems):
        direction = _DIRECTION.get(s)
        if direction is None or consumed[i]:
            continue
        after, before = _window(stems, i, +1), _window(stems, i, -1)
        if s in _TRANSITIVE_STEMS:
            order: tuple[list[int], ...] = (after, before)  # "cuts jobs", else passive "profit lifted by"
        elif stems[i + 1 : i + 2] == ["in"]:
            order = (before, after)  # "fall in profit"
        else:
            order = (before,)  # "profit falls"; never "slips, worries grow" (that is a new subject)
        for side in order:
            j = next((k for k in side if not consumed[k] and stems[k] in _OBJECT), None)
            if j is not None:
                strength = max(abs(_VALENCE.get(s, 1.5)), 1.0)
                if _OBJECT[stems[j]] < 0:
                    strength *= _BAD_REDUCED_FACTOR
                valence[i] = direction * _OBJECT[stems[j]] * strength
                consumed[i] = consumed[j] = True
                paired_with[i] = j
                break
    # 4. Single words.
    for i, s in enumerate(stems):
        if not consumed[i] and s in _VALENCE:
            valence[i] = _VALENCE[s]
    # 5. Negation and intensifiers in front of each sentiment-bearing word (or pair).
    hits = 0
    for i in range(n):
        if valence[i] == 0.0:
            continue
        hits += 1
        start = min(i, paired_with.get(i, i))
        for k in range(start - 1, max(-1, start - 1 - _NEGATION_WINDOW), -1):
            if stems[k] in _NEGATIONS:
                valence[i] *= _NEGATION_FACTOR
                if valence[k] != 0.0 and not consumed[k]:
                    valence[k] = 0.0  # "fails to beat": `fail` is the negation, not a second hit
                    hits -= 1
                break
        for k in range(start - 1, max(-1, start - 1 - _INTENSIFIER_WINDOW), -1):
            valence[i] *= _INTENSIFIERS.get(stems[k], 1.0)
    # 6. "A but B": B is the point. "despite A": A is background.
    for k, s in enumerate(stems):
        if s in _CONTRAST_AFTER:
            for m in range(n):
                valence[m] *= 0.5 if m < k else 1.5
            break
    for k, s in enumerate(stems):
        if s in _CONCESSIVE:
            for m in range(k + 1, n):
                valence[m] *= 0.5
            break
    return valence, max(hits, 0)


def read_lexicon(title: str) -> LexiconReading:
    """Score a headline with the lexicon alone."""
    positive = negative = 0.0
    hits = 0
    for clause in tokenize(title):
        values, clause_hits = _clause_valences(clause)
        hits += clause_hits
        positive += sum(v for v in values if v > 0)
        negative += sum(v for v in values if v < 0)
    return LexiconReading(positive=positive, negative=negative, hits=hits)


def _squash(x: float) -> float:
    return x / math.sqrt(x * x + _COMPOUND_ALPHA)


def dense_features(title: str) -> list[float]:
    """Lexicon features the model weighs: overall balance, positive and negative strength."""
    reading = read_lexicon(title)
    return [reading.compound, _squash(reading.positive), _squash(reading.negative)]


DENSE_NAMES = ("lexicon_compound", "lexicon_positive", "lexicon_negative")


# Words the lexicon reads are left to it (with their negation and composition), not relearned one
# by one; bigrams that contain them stay, so the model can still learn e.g. "profit beat".
_LEXICON_STEMS = frozenset(_VALENCE) | frozenset(_DIRECTION) | frozenset(_OBJECT) | _NEGATIONS


def ngram_terms(title: str) -> set[str]:
    """Stemmed words the lexicon does not know, and adjacent-word bigrams within a clause; no numbers."""
    terms: set[str] = set()
    for clause in tokenize(title):
        words = [w for w in clause if not any(ch.isdigit() for ch in w)]
        terms.update(w for w in words if w not in _LEXICON_STEMS)
        terms.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    return terms


class SentimentModel(msgspec.Struct, frozen=True):
    """Ridge weights over the lexicon features and n-gram indicators; output clipped to [-1, 1]."""

    intercept: float
    dense: dict[str, float]
    ngrams: dict[str, float]

    def predict(self, title: str) -> float:
        total = self.intercept
        for name, value in zip(DENSE_NAMES, dense_features(title), strict=True):
            total += self.dense.get(name, 0.0) * value
        for term in ngram_terms(title):
            total += self.ngrams.get(term, 0.0)
        if not math.isfinite(total):
            return 0.0
        return max(-1.0, min(1.0, total))


# Words inside company names ("Bank of Scotland") that are not names themselves.
_NAME_FILLERS = frozenset({"of", "the", "and", "for", "in", "on", "at", "to", "a", "an", "de"})


def fit_sentiment_model(
    titles: Sequence[str],
    gold: Sequence[float],
    *,
    ngram_penalty: float = 16.0,
    dense_penalty: float = 0.5,
    min_count: int = 2,
    excluded_terms: Iterable[str] = (),
) -> SentimentModel:
    """Fit the ridge model by its dual form (n x n solve); deterministic for the same inputs.

    `excluded_terms` keeps names (companies, tickers) out of the vocabulary, so the model learns how
    news is worded rather than which company had a bad year in the training data.
    """
    excluded = {stem(w) for t in excluded_terms for w in re.findall(r"[a-z0-9]+", t.lower()) if w not in _NAME_FILLERS}
    term_sets = [ngram_terms(t) for t in titles]
    counts: dict[str, int] = {}
    for terms in term_sets:
        for term in terms:
            counts[term] = counts.get(term, 0) + 1
    vocab = sorted(
        term for term, c in counts.items() if c >= min_count and not any(p in excluded for p in term.split())
    )
    index = {term: k for k, term in enumerate(vocab)}
    n, d_dense = len(titles), len(DENSE_NAMES)
    x = np.zeros((n, d_dense + len(vocab)))
    for row, title in enumerate(titles):
        x[row, :d_dense] = dense_features(title)
        for term in term_sets[row]:
            k = index.get(term)
            if k is not None:
                x[row, d_dense + k] = 1.0
    y = np.asarray(gold, dtype=float)
    x_mean, y_mean = x.mean(axis=0), y.mean()
    xc, yc = x - x_mean, y - y_mean
    # Column-specific penalties via rescaling: w_j = u_j / sqrt(lambda_j), plain ridge on u.
    scale = np.concatenate([np.full(d_dense, dense_penalty), np.full(len(vocab), ngram_penalty)]) ** -0.5
    xs = xc * scale
    alpha = np.linalg.solve(xs @ xs.T + np.eye(n), yc)
    w = scale * (xs.T @ alpha)
    intercept = float(y_mean - x_mean @ w)
    dense = {name: round(float(v), 6) for name, v in zip(DENSE_NAMES, w[:d_dense], strict=True)}
    ngrams = {term: round(float(v), 6) for term, v in zip(vocab, w[d_dense:], strict=True) if abs(v) >= 1e-4}
    return SentimentModel(intercept=round(intercept, 6), dense=dense, ngrams=ngrams)


def model_to_json(model: SentimentModel) -> str:
    """Stable, diff-friendly JSON for the shipped weights file."""
    payload = {"intercept": model.intercept, "dense": model.dense, "ngrams": dict(sorted(model.ngrams.items()))}
    return json.dumps(payload, indent=1, sort_keys=False) + "\n"


def _load_shipped_model() -> SentimentModel:
    raw = resources.files("workers.agents").joinpath("sentiment_model.json").read_bytes()
    return msgspec.json.decode(raw, type=SentimentModel)


MODEL = _load_shipped_model()


def score_headline(title: str) -> float:
    """Sentiment of one headline in [-1, 1]; positive is good news for the asset named."""
    return MODEL.predict(title)


# Names a headline may use for a base asset; anything else is matched by its ticker.
_ASSET_NAMES: dict[str, tuple[str, ...]] = {
    "BTC": ("bitcoin", "btc", "xbt"),
    "ETH": ("ethereum", "ether", "eth"),
    "XRP": ("xrp", "ripple"),
    "ADA": ("cardano", "ada"),
    "SOL": ("solana", "sol"),
    "DOGE": ("dogecoin", "doge"),
    "BNB": ("bnb", "binance coin"),
    "LTC": ("litecoin", "ltc"),
    "DOT": ("polkadot",),
    "AVAX": ("avalanche", "avax"),
    "LINK": ("chainlink",),
    "TRX": ("tron", "trx"),
}
_QUOTE_SUFFIXES = ("USDT", "USDC", "BUSD", "FDUSD", "USD", "EUR", "BTC", "ETH")
_REASON_COUNT = 3
_REASON_LENGTH = 80
# Scores near zero say little about direction: they dilute agreement by this much.
_AGREEMENT_EPSILON = 0.1


def base_asset(symbol: str) -> str:
    """`BTC/USDT:USDT` -> `BTC`; `ETHUSDT` -> `ETH`; `BTC-USD` -> `BTC`."""
    head = re.split(r"[/:\-_]", symbol.strip().upper(), maxsplit=1)[0]
    if head != symbol.strip().upper():
        return head
    for quote in _QUOTE_SUFFIXES:
        if head.endswith(quote) and len(head) > len(quote):
            return head[: -len(quote)]
    return head


def _mentions(title: str, asset: str) -> bool:
    names = _ASSET_NAMES.get(asset, (asset.lower(),))
    text = title.lower()
    return any(re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", text) for name in names)


def _age_text(age_ms: int) -> str:
    minutes = age_ms // 60_000
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 48 * 60:
        return f"{minutes // 60}h"
    return f"{minutes // (24 * 60)}d"


def _shorten(title: str) -> str:
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in title).split())
    return flat if len(flat) <= _REASON_LENGTH else flat[: _REASON_LENGTH - 1].rstrip() + "\u2026"


def sentiment_insight(
    symbol: str,
    headlines: Sequence[Headline],
    now_ms: int,
    *,
    half_life_ms: int = HALF_LIFE_MS,
) -> Insight:
    """Recency-weighted news sentiment for `symbol` from headlines published at or before `now_ms`.

    Weight = 0.5 ** (age / half_life) (x MENTION_BOOST when the headline names the base asset);
    score = weighted mean of headline scores; confidence = volume x agreement, both in [0, 1].
    """
    asset = base_asset(symbol)
    latest: dict[str, Headline] = {}
    for headline in headlines:
        age = now_ms - headline.published_at
        if age < 0 or age > MAX_AGE_MS or not headline.title.strip():
            continue  # future news would be look-ahead; week-old news weighs nothing
        key = " ".join(headline.title.lower().split())
        if key not in latest or headline.published_at > latest[key].published_at:
            latest[key] = headline  # the same story from several feeds counts once

    rows: list[tuple[float, float, Headline]] = []
    for headline in latest.values():
        age = now_ms - headline.published_at
        weight = 0.5 ** (age / max(half_life_ms, 1))
        if _mentions(headline.title, asset):
            weight *= MENTION_BOOST
        rows.append((weight, score_headline(headline.title), headline))

    total_weight = sum(w for w, _, _ in rows)
    if not rows or total_weight <= 0.0 or not math.isfinite(total_weight):
        return Insight(
            agent=AgentName.SENTIMENT,
            symbol=symbol,
            score=0.0,
            confidence=0.0,
            reasons=("no headlines in the look-back window",),
            values={"headlines": 0.0, "weight": 0.0},
        )

    weighted_sum = sum(w * s for w, s, _ in rows)
    score = max(-1.0, min(1.0, weighted_sum / total_weight))
    agreement = abs(weighted_sum) / sum(w * (abs(s) + _AGREEMENT_EPSILON) for w, s, _ in rows)
    volume = 1.0 - math.exp(-total_weight / CONFIDENCE_WEIGHT_SCALE)
    confidence = max(0.0, min(1.0, volume * agreement))
    if not (math.isfinite(score) and math.isfinite(confidence)):
        score, confidence = 0.0, 0.0

    influential = sorted(rows, key=lambda row: -abs(row[0] * row[1]))[:_REASON_COUNT]
    reasons = (
        f"{len(rows)} headline(s), recency half-life {half_life_ms / 3_600_000:g}h, agreement {agreement:.2f}",
        *(f'{s:+.2f} ({_age_text(now_ms - h.published_at)} ago) "{_shorten(h.title)}"' for _, s, h in influential),
    )
    return Insight(
        agent=AgentName.SENTIMENT,
        symbol=symbol,
        score=score,
        confidence=confidence,
        reasons=reasons,
        values={
            "headlines": float(len(rows)),
            "weight": total_weight,
            "agreement": agreement,
            "mentioning": float(sum(1 for _, _, h in rows if _mentions(h.title, asset))),
        },
    )
