"""Regenerate workers/agents/sentiment_model.json from the SemEval-2017 Task 5 development headlines.

Run: `uv run python bench/train_sentiment.py`. Deterministic: the same data gives the same file.
The data folder is $QUORUM_DATA_DIR, by default ../shared/data beside the repository.
"""

from __future__ import annotations

import json
from pathlib import Path

from quorum.settings import data_dir as quorum_data_dir
from workers.agents.sentiment import fit_sentiment_model, model_to_json

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_PATH = REPO_ROOT / "workers" / "agents" / "sentiment_model.json"


def load_dev_headlines() -> list[dict]:
    data_dir = quorum_data_dir()
    return json.loads((data_dir / "news" / "headlines_dev.json").read_text(encoding="utf-8"))


def main() -> None:
    rows = load_dev_headlines()
    model = fit_sentiment_model(
        [r["title"] for r in rows],
        [r["sentiment"] for r in rows],
        excluded_terms=[r["company"] for r in rows],
    )
    MODEL_PATH.write_text(model_to_json(model), encoding="utf-8")
    print(
        f"wrote {MODEL_PATH.relative_to(REPO_ROOT)}: {len(model.ngrams)} n-gram weights, "
        f"lexicon weights {model.dense}, intercept {model.intercept}"
    )


if __name__ == "__main__":
    main()
