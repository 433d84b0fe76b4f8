"""Push notifications through Firebase Cloud Messaging (FCM HTTP v1, through firebase-admin).

`push_message` turns an event into what a phone shows (pure). `FcmSender` sends one message to many
tokens with `messaging.send_each`, at most 500 tokens a call, and sorts the answers: tokens FCM says are
gone (unregistered, invalid, another project's) are returned for deletion; transient failures (quota,
FCM unavailable) are returned for a later retry; nothing here raises for one bad token.

Credentials: the service-account JSON file `FIREBASE_CREDENTIALS_FILE` names (its `project_id` is the
Firebase project), else Google's Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`,
or the platform's). With none, push is off and the events still reach webhooks and the live stream.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
import warnings
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

import msgspec

from quorum.settings import Settings
from tenants.events import EventMessage, EventType

log = logging.getLogger(__name__)
# The app registers FCM registration tokens (what expo-notifications and react-native-firebase hand out);
# firebase-admin 7 prefers installation ids (`fid`) but FCM v1 still takes `token`.
warnings.filterwarnings("ignore", message="Message.token is deprecated", category=DeprecationWarning)

FCM_BATCH_LIMIT = 500  # send_each refuses more
SUMMARY_BODY_MAX = 200  # a lock screen shows two or three lines; the app shows the rest
FCM_HTTP_TIMEOUT_SECONDS = 10
_APP_NAME = "quorum-push"
_RECHECK_CREDENTIALS_SECONDS = 600


class PushMessage(msgspec.Struct, frozen=True):
    title: str
    body: str
    data: dict[str, str]  # for the app to open the right screen; FCM data values must be strings


class PushOutcome(msgspec.Struct, frozen=True):
    sent: int = 0
    dead_tokens: tuple[str, ...] = ()  # delete these devices
    retry_tokens: tuple[str, ...] = ()  # failed for a reason that may pass


class PushUnavailable(RuntimeError):
    """No FCM credentials are configured (or they cannot be loaded)."""


# -- what the phone shows ---------------------------------------------------------------------------------

def push_message(event: EventMessage, bot_name: str | None = None) -> PushMessage | None:
    """Title, body and deep-link data for `event`, or None for types never pushed."""
    p = event.payload
    symbol = _text(p.get("symbol"))
    quote = _quote(symbol)
    side = _text(p.get("side")).capitalize()
    match event.type:
        case EventType.TRADE_OPENED:
            title = f"{side} {symbol} opened".strip()
            parts = [f"{_num(p.get('amount'))} at {_num(p.get('entryPrice'))}"]
            if p.get("stopLoss"):
                parts.append(f"stop {_num(p.get('stopLoss'))}")
            if p.get("takeProfit"):
                parts.append(f"target {_num(p.get('takeProfit'))}")
            body = " · ".join(parts)
        case EventType.TRADE_CLOSED:
            title = f"{symbol} {_text(p.get('side'))} closed".replace("  ", " ")
            body = f"PnL {_signed(p.get('realizedPnl'))} {quote} · exit {_num(p.get('exitPrice'))}".strip()
        case EventType.STOP_LOSS_HIT:
            title = f"Stop-loss hit on {symbol}"
            body = f"PnL {_signed(p.get('realizedPnl'))} {quote} · exit {_num(p.get('exitPrice'))}".strip()
        case EventType.TAKE_PROFIT_HIT:
            title = f"Take-profit hit on {symbol}"
            body = f"PnL {_signed(p.get('realizedPnl'))} {quote} · exit {_num(p.get('exitPrice'))}".strip()
        case EventType.BOT_PAUSED:
            title = "Bot paused"
            body = _text(p.get("reason")) or "The service paused the bot."
        case EventType.BOT_SILENT:
            title = "Bot not running"
            body = _text(p.get("reason"))
        case EventType.BOT_RECOVERED:
            title = "Bot running again"
            body = "Its trading cycles complete again."
        case EventType.BOT_STATUS:
            title = f"Bot {_text(p.get('status')) or 'changed'}"
            body = _text(p.get("detail"))
        case EventType.CLOSE_FAILED:
            title = f"Could not close {symbol}".strip()
            body = _text(p.get("detail")) or "The exchange did not close it. Check the position in the app."
        case EventType.TRADE_SKIPPED:
            title = f"Trade skipped on {symbol}".strip()
            body = _text(p.get("reason"))
        case EventType.BUDGET_EXHAUSTED:
            title = "AI budget used up for today"
            body = "The rules brain decides until midnight UTC."
        case EventType.DAILY_SUMMARY:
            title = _summary_title(p)
            body = _summary_body(p)
        case EventType.WEBHOOK_DISABLED:
            title = "Webhook disabled"
            body = f"{_text(p.get('host'))}: {_text(p.get('reason'))}".strip(": ")
        case _:
            return None
    if bot_name:
        title = f"{bot_name}: {title}"
    data = {"eventId": str(event.id), "type": event.type.value}
    if event.bot_id is not None:
        data["botId"] = str(event.bot_id)
    return PushMessage(title=title[:120], body=body[:240], data=data)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _quote(symbol: str) -> str:
    """The quote currency of `BASE/QUOTE` or `BASE/QUOTE:SETTLE`."""
    return symbol.partition("/")[2].partition(":")[0]


def _decimal(value: object) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


def _num(value: object) -> str:
    number = _decimal(value)
    if number is None:
        return _text(value)
    # Eight significant digits at most: prices and amounts as a person reads them.
    return f"{number:,.8g}" if abs(number) < 10**8 else f"{number:,.0f}"


def _signed(value: object) -> str:
    number = _decimal(value)
    if number is None:
        return _text(value)
    return f"{'+' if number > 0 else ''}{number:,.2f}"


def _summary_title(p: dict[str, object]) -> str:
    try:
        day = datetime.date.fromisoformat(_text(p.get("day")))
    except ValueError:
        return "Daily summary"
    return f"Daily summary, {day:%b} {day.day}"


def _summary_body(p: dict[str, object]) -> str:
    """One short line per bot (`BTC bot: +12.40 USDT, 3 trades, 67% won`); past the length, "+N more"."""
    bots = [b for b in p.get("bots") or () if isinstance(b, dict)]
    lines = [_bot_day(b) for b in bots]
    body = ""
    for shown, line in enumerate(lines):
        rest = len(lines) - shown - 1
        more = f" · +{rest} more" if rest else ""
        candidate = f"{body} · {line}" if body else line
        if len(candidate) + len(more) > SUMMARY_BODY_MAX and body:
            return f"{body} · +{len(lines) - shown} more"
        body = candidate
    return body or "Your bots' day."


def _bot_day(bot: dict[str, object]) -> str:
    name = _text(bot.get("name")) or "Bot"
    closed = _int(bot.get("tradesClosed"))
    opened = _int(bot.get("tradesOpened"))
    if closed:
        rate = _decimal(bot.get("winRate")) or Decimal(0)
        trades = "1 trade" if closed == 1 else f"{closed} trades"
        return (f"{name}: {_signed(bot.get('realizedPnl'))} {_text(bot.get('currency'))}".rstrip()
                + f", {trades}, {round(rate * 100)}% won")
    if opened:
        return f"{name}: {opened} trade{'' if opened == 1 else 's'} opened, none closed yet"
    return f"{name}: no trades"


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


# -- sending ----------------------------------------------------------------------------------------------

class FcmSender:
    """Sends through firebase-admin, one Firebase app per process (created on first use)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> FcmSender:
        return cls(settings.firebase_credentials_file or None)

    def __init__(self, credentials_path: str | None = None) -> None:
        self._credentials_path = credentials_path
        self._app = None
        self._lock = threading.Lock()
        self._unavailable_until = 0.0

    def _firebase_app(self):  # noqa: ANN202 - firebase_admin.App
        with self._lock:
            if self._app is None:
                if time.monotonic() < self._unavailable_until:
                    raise PushUnavailable("FCM credentials unavailable (checked recently)")
                import firebase_admin
                from firebase_admin import credentials

                try:
                    credential = (credentials.Certificate(self._credentials_path) if self._credentials_path
                                  else credentials.ApplicationDefault())
                    # Resolving the credential here surfaces a missing configuration now, not per message.
                    credential.get_credential()
                    self._app = firebase_admin.initialize_app(
                        credential, {"httpTimeout": FCM_HTTP_TIMEOUT_SECONDS}, name=f"{_APP_NAME}-{id(self)}"
                    )
                except Exception as exc:  # google.auth raises several types; all mean "no push"
                    self._unavailable_until = time.monotonic() + _RECHECK_CREDENTIALS_SECONDS
                    log.warning("push is off: no FCM credentials", extra={"error": type(exc).__name__})
                    raise PushUnavailable(f"FCM credentials unavailable: {type(exc).__name__}") from exc
            return self._app

    def send(self, tokens: Sequence[str], message: PushMessage) -> PushOutcome:
        """Send `message` to every token (blocking: run it in a thread). Never raises for a token's failure."""
        from firebase_admin import exceptions, messaging

        app = self._firebase_app()
        sent, dead, retry = 0, [], []
        for start in range(0, len(tokens), FCM_BATCH_LIMIT):
            batch = list(tokens[start:start + FCM_BATCH_LIMIT])
            messages = [
                messaging.Message(
                    token=token,
                    notification=messaging.Notification(title=message.title, body=message.body),
                    data=message.data,
                    android=messaging.AndroidConfig(priority="high"),
                    apns=messaging.APNSConfig(payload=messaging.APNSPayload(aps=messaging.Aps(sound="default"))),
                )
                for token in batch
            ]
            try:
                answer = messaging.send_each(messages, app=app)
            except exceptions.FirebaseError as exc:  # the whole call failed (e.g. the token exchange)
                log.warning("FCM send failed", extra={"error": type(exc).__name__, "tokens": len(batch)})
                retry.extend(batch)
                continue
            for token, response in zip(batch, answer.responses, strict=True):
                if response.success:
                    sent += 1
                elif _token_is_dead(response.exception):
                    dead.append(token)
                else:
                    retry.append(token)
        return PushOutcome(sent=sent, dead_tokens=tuple(dead), retry_tokens=tuple(retry))


def _token_is_dead(error: Exception | None) -> bool:
    """FCM says this token will never work again: unregistered, malformed, or another sender's."""
    from firebase_admin import exceptions, messaging

    if isinstance(error, messaging.UnregisteredError | messaging.SenderIdMismatchError):
        return True
    # INVALID_ARGUMENT is about the token when FCM says so; a malformed message would be our bug, not the phone's.
    return isinstance(error, exceptions.InvalidArgumentError) and "token" in str(error).lower()
