"""The GPT brain in a backtest: answers recorded once from a model, replayed deterministically after.

A backtest never calls a model silently. `GptReplay` drives the real `GptBrain` (the same prompt, the real
`openai` client, the same parsing and validation as a live cycle) through an httpx transport that either
forwards each request to a model and keeps its answer (recording: `record_from` is the model's base URL), or
answers from the recording and from nothing else (replay). A replay asked for a request it has no answer for
raises `RecordingMiss`: the candles, the agents or the prompt changed since the recording, and the run must be
recorded again. A proposal the model made but validation rejected falls back to the rules brain, as live.

A recording is a JSON file: the model's name, its training cutoff when known, and the answers keyed by the
sha256 of the exact request body. A backtest whose candles start before the cutoff is contaminated: the model
may have read about those very prices (published results on LLM trading shrink or vanish once memorised
periods are excluded), and the report says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
from openai import AsyncOpenAI

from workers.agents.insight import Insight, OpenPosition
from workers.brain.decision import Decision
from workers.brain.gpt import GptBrain, GptBrainConfig
from workers.brain.rules import RulesBrain
from workers.brain.validation import BotConstraints, validate_proposal

BACKTEST_TENANT = uuid.UUID(int=0)
BACKTEST_BOT = uuid.UUID(int=1)


class RecordingMiss(LookupError):
    """A replay met a request the recording has no answer for."""


class ModelRecording(msgspec.Struct, kw_only=True):
    model: str
    cutoff: str | None = None  # YYYY-MM-DD: the end of the model's training data, when known
    answers: dict[str, str] = msgspec.field(default_factory=dict)  # sha256 of the request body -> response body

    @classmethod
    def load(cls, path: Path) -> ModelRecording:
        return msgspec.json.decode(path.read_bytes(), type=cls)

    def save(self, path: Path) -> None:
        path.write_bytes(msgspec.json.format(msgspec.json.encode(self), indent=1))

    def cutoff_ms(self) -> int | None:
        if not self.cutoff:
            return None
        return int(datetime.strptime(self.cutoff, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() * 1000)


class _RecordingTransport(httpx.AsyncBaseTransport):
    """Answers from the recording; records what a forwarding transport answers when there is one."""

    def __init__(self, recording: ModelRecording, forward: httpx.AsyncBaseTransport | None) -> None:
        self.recording = recording
        self.forward = forward
        self.missed: str | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        key = hashlib.sha256(body).hexdigest()
        answer = self.recording.answers.get(key)
        if answer is not None:
            return httpx.Response(200, content=answer.encode(), headers={"content-type": "application/json"})
        if self.forward is None:
            self.missed = key
            raise httpx.ConnectError("no recorded answer for this request", request=request)
        response = await self.forward.handle_async_request(request)
        content = await response.aread()
        if response.status_code == 200:
            self.recording.answers[key] = content.decode()
        return httpx.Response(response.status_code, content=content, headers=response.headers)

    async def aclose(self) -> None:
        if self.forward is not None:
            await self.forward.aclose()


class GptReplay:
    """The backtest's GPT proposer: `decide(...)` is one decision, from the recording (or the model, recording)."""

    def __init__(self, recording: ModelRecording, *, record_from: str | None = None, api_key: str = "") -> None:
        self.recording = recording
        self.fallback = RulesBrain()
        self.constraints = BotConstraints(symbols=())
        self.by_model = 0
        self.fell_back: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._transport = _RecordingTransport(recording, httpx.AsyncHTTPTransport() if record_from else None)
        base_url = record_from or "http://recording.invalid/v1"  # never reached: the transport answers
        config = GptBrainConfig(openai_base_url=base_url, openai_api_key=api_key or "not-set",
                                openai_model=recording.model, llm_max_retries=0, llm_timeout_seconds=120.0)
        client = AsyncOpenAI(base_url=base_url, api_key=config.openai_api_key, max_retries=0,
                             timeout=config.llm_timeout_seconds,
                             http_client=httpx.AsyncClient(transport=self._transport))
        self._gpt = GptBrain(config, client)

    def bind(self, fallback: RulesBrain, constraints: BotConstraints) -> None:
        """The backtest's own rules brain (the fallback, as live) and the bot's constraints the model is told."""
        self.fallback, self.constraints = fallback, constraints

    def decide(
        self, symbol: str, insights: Sequence[Insight], *, position: OpenPosition | None, price: float, now_ms: int
    ) -> Decision:
        result = self._loop.run_until_complete(
            self._gpt.propose(tenant_id=BACKTEST_TENANT, bot_id=BACKTEST_BOT, constraints=self.constraints,
                              symbol=symbol, price=price, insights=insights, position=position)
        )
        if self._transport.missed is not None:
            when = datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
            raise RecordingMiss(f"the recording has no answer for the decision at {when} UTC (request "
                                f"{self._transport.missed[:12]}): record this run again with --record")
        if result.proposal is not None:
            validated = validate_proposal(result.proposal, self.constraints, symbol, price, position)
            if validated.decision is not None:
                self.by_model += 1
                return validated.decision
            self.fell_back["rejected by validation"] += 1
        else:
            self.fell_back[str(result.failure)] += 1
        return self.fallback.decide(symbol, insights, position=position, price=price)

    def close(self) -> None:
        self._loop.run_until_complete(self._gpt.aclose())
        self._loop.close()

    def summary(self, start_ms: int) -> list[str]:
        """The report's lines on the brain: who decided, and whether the period is contaminated."""
        r = self.recording
        lines = [f"brain: gpt, model {r.model} (training cutoff {r.cutoff or 'unknown'}), {self.by_model} "
                 f"decisions by the model, "
                 + (", ".join(f"{n} fell back to rules ({why})" for why, n in sorted(self.fell_back.items()))
                    or "none fell back")]
        cutoff = r.cutoff_ms()
        if cutoff is None:
            lines.append("contamination: unknown (no training cutoff for this model); results may be memorised")
        elif start_ms < cutoff:
            lines.append(f"CONTAMINATED: these candles start before the model's training cutoff ({r.cutoff}); "
                         "it may have read about these very prices, so the figures say little about the future")
        else:
            lines.append(f"not contaminated: every candle comes after the model's training cutoff ({r.cutoff})")
        return lines
