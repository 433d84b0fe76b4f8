"""Print how well the news-sentiment agent tracks human sentiment on the SemEval-2017 Task 5 dev headlines.

Run: `uv run python bench/sentiment_quality.py`. Prints figures, passes or fails nothing.
Pearson r against the gold scores, and sign accuracy over headlines with |gold| >= 0.1, for:
plain VADER (baseline), the lexicon alone, the shipped scorer in-sample (it was trained on these
headlines), the scorer under 5-fold cross-validation (the ridge part refitted on 4/5, scored on the
other 1/5), and a lock-box split: the lexicon was written looking at the first 400 headlines only, so
the last 100 are scored by a model trained on the first 400 (less the few repeated titles) as the
cleanest held-out estimate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from quorum.settings import data_dir as quorum_data_dir
from workers.agents.sentiment import fit_sentiment_model, read_lexicon, score_headline

REPO_ROOT = Path(__file__).resolve().parents[1]
FOLDS = 5
SEED = 0
LOCKBOX_START = 400
SIGN_THRESHOLD = 0.1


def load_dev_headlines() -> list[dict]:
    data_dir = quorum_data_dir()
    return json.loads((data_dir / "news" / "headlines_dev.json").read_text(encoding="utf-8"))


def quality(predicted: Sequence[float], gold: Sequence[float]) -> tuple[float, float]:
    """(Pearson r, sign accuracy over |gold| >= 0.1); a zero prediction counts as a wrong sign."""
    p, g = np.asarray(predicted, dtype=float), np.asarray(gold, dtype=float)
    r = float(np.corrcoef(p, g)[0, 1]) if p.std() > 0 else 0.0
    mask = np.abs(g) >= SIGN_THRESHOLD
    return r, float((np.sign(p[mask]) == np.sign(g[mask])).mean())


def cross_validated(rows: list[dict], folds: int = FOLDS, seed: int = SEED) -> list[float]:
    """Out-of-fold predictions: each headline is scored by a model that never saw it.

    Folds are drawn over distinct titles: SemEval repeats a headline once per company it names, and
    a copy in the training folds would flatter the held-out figure.
    """
    titles = sorted({r["title"] for r in rows})
    order = np.random.default_rng(seed).permutation(len(titles))
    predicted = [0.0] * len(rows)
    for fold in np.array_split(order, folds):
        held_titles = {titles[k] for k in fold}
        train = [r for r in rows if r["title"] not in held_titles]
        model = fit_sentiment_model(
            [r["title"] for r in train],
            [r["sentiment"] for r in train],
            excluded_terms=[r["company"] for r in train],
        )
        for i, r in enumerate(rows):
            if r["title"] in held_titles:
                predicted[i] = model.predict(r["title"])
    return predicted


def main() -> None:
    rows = load_dev_headlines()
    gold = [r["sentiment"] for r in rows]
    titles = [r["title"] for r in rows]
    signed = sum(abs(g) >= SIGN_THRESHOLD for g in gold)
    print(f"SemEval-2017 Task 5 dev headlines: {len(rows)} ({signed} with |gold| >= {SIGN_THRESHOLD})")
    print(f"{'scorer':<58} {'pearson_r':>9} {'sign_acc':>8}")

    def line(name: str, predicted: Sequence[float], gold_: Sequence[float]) -> None:
        r, acc = quality(predicted, gold_)
        print(f"{name:<58} {r:>9.3f} {acc:>8.3f}")

    vader = SentimentIntensityAnalyzer()
    line("VADER compound (baseline)", [vader.polarity_scores(t)["compound"] for t in titles], gold)
    line("lexicon only (no training)", [read_lexicon(t).compound for t in titles], gold)
    line("shipped scorer, in-sample", [score_headline(t) for t in titles], gold)
    line(f"scorer, {FOLDS}-fold cross-validated", cross_validated(rows), gold)

    box = rows[LOCKBOX_START:]
    box_titles = {r["title"] for r in box}
    train = [r for r in rows[:LOCKBOX_START] if r["title"] not in box_titles]
    model = fit_sentiment_model(
        [r["title"] for r in train],
        [r["sentiment"] for r in train],
        excluded_terms=[r["company"] for r in train],
    )
    box_gold = [r["sentiment"] for r in box]
    line(f"lock-box: lexicon only, last {len(box)}", [read_lexicon(r["title"]).compound for r in box], box_gold)
    line(
        f"lock-box: trained on first {len(train)}, scored on last {len(box)}",
        [model.predict(r["title"]) for r in box],
        box_gold,
    )


if __name__ == "__main__":
    main()
