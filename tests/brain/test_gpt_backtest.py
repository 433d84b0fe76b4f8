"""A backtest with the GPT brain: recorded once through the real openai client, replayed calling nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quorum.cli import main
from quorum.settings import data_dir
from tests.fakes.openai_server import FakeOpenAI, completion

WAIT = {"action": "WAIT", "symbol": "ETH/BTC", "entry": None, "stop_loss": None, "take_profit": None,
        "leverage": 1, "confidence": 0.4, "reasons": ["no edge after costs"]}


@pytest.fixture
def candles(tmp_path: Path) -> Path:
    """450 real ETH/BTC 5m candles: 150 decisions after the 300 of warmup."""
    lines = (data_dir() / "ohlcv" / "ETH_BTC-5m.csv").read_text().splitlines()
    path = tmp_path / "ETH_BTC-5m.csv"
    path.write_text("\n".join(lines[:451]) + "\n")
    return path


def backtest(candles: Path, *extra: str) -> list[str]:
    return ["backtest", "--data", str(candles), "--timeframes", "5m,15m", "--brain", "gpt", *extra]


def figures(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(("total return", "trades", "max drawdown"))]


def test_a_recorded_gpt_backtest_replays_the_same_run_without_calling_a_model(
    fake_openai: FakeOpenAI, candles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_openai.default = completion(WAIT)
    fake_openai.script = [completion("not json at all")]  # one unusable answer: that decision falls back to rules
    recording = tmp_path / "answers.json"
    assert main(backtest(candles, "--record", str(recording), "--base-url", fake_openai.base_url,
                         "--api-key", "k")) == 0
    recorded = capsys.readouterr().out
    asked = len(fake_openai.requests)
    assert asked == 150  # one call per decision, each recorded
    assert "brain: gpt, model gpt-4o-mini (training cutoff 2023-10-01), 149 decisions by the model" in recorded
    assert "1 fell back to rules (invalid_json)" in recorded
    assert "CONTAMINATED" in recorded  # January 2018 is long before the model's cutoff
    saved = json.loads(recording.read_text())
    assert saved["model"] == "gpt-4o-mini" and len(saved["answers"]) == 150

    assert main(backtest(candles, "--replay", str(recording))) == 0
    replayed = capsys.readouterr().out
    assert len(fake_openai.requests) == asked  # nothing was called
    assert figures(replayed) == figures(recorded)
    assert "149 decisions by the model, 1 fell back to rules (invalid_json)" in replayed


def test_a_replay_missing_an_answer_stops_instead_of_asking_a_model(
    fake_openai: FakeOpenAI, candles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_openai.default = completion(WAIT)
    recording = tmp_path / "answers.json"
    assert main(backtest(candles, "--record", str(recording), "--base-url", fake_openai.base_url)) == 0
    saved = json.loads(recording.read_text())
    saved["answers"].pop(sorted(saved["answers"])[0])
    recording.write_text(json.dumps(saved))
    capsys.readouterr()
    asked = len(fake_openai.requests)
    assert main(backtest(candles, "--replay", str(recording))) == 2
    assert "the recording has no answer for the decision at" in capsys.readouterr().err
    assert len(fake_openai.requests) == asked


def test_a_gpt_backtest_without_a_recording_is_refused(candles: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(backtest(candles)) == 2
    assert "never calls a model silently" in capsys.readouterr().err


def test_a_period_after_the_cutoff_is_not_contaminated(
    fake_openai: FakeOpenAI, candles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_openai.default = completion(WAIT)
    assert main(backtest(candles, "--record", str(tmp_path / "r.json"), "--base-url", fake_openai.base_url,
                         "--model", "my-local-model", "--model-cutoff", "2017-06-30")) == 0
    out = capsys.readouterr().out
    assert "model my-local-model (training cutoff 2017-06-30)" in out
    assert "not contaminated: every candle comes after the model's training cutoff (2017-06-30)" in out
