"""The HTTP client every Purple Flea service client builds on.

What it guarantees, because the callers move money with it:

- every call has a timeout (default 5 s) and ends in a decoded msgspec Struct or one of the
  `venue.errors` exceptions, chosen by what the failure means for money (see that module);
- only SAFE calls are retried (GETs, with exponential backoff). A spend is sent once; after a
  lost answer `spend_once` looks it up and sends again only when the lookup proves it did not
  happen (each service client supplies the lookup);
- spends carry an `Idempotency-Key` header. The real services ignore it; the sandbox logs it;
- parsing is lenient where the real services are sloppy: unknown fields (`_info`) are ignored,
  amounts may be floats or strings and become integer micro-USD, `null` stands for Infinity;
- the API key is held in a `Secret` and never appears in reprs, logs or exception messages.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, TypeVar

import httpx
import msgspec

from messages.errors import MoneyError
from messages.money import usd_from_venue
from venue.client.lookup import Lookup, Presence
from venue.client.pool import HEADERS, SHARED
from venue.errors import VenueError, VenueNotApplied, VenueRateLimited, VenueRejected, VenueUnavailable

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 5.0


class Secret:
    """An API key that prints as `sk_live_…` and nothing more. `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("a secret must be a string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def _masked(self) -> str:
        prefix = self._value.rsplit("_", 1)[0] + "_" if "_" in self._value else ""
        return f"{prefix}…(hidden)"

    def __repr__(self) -> str:
        return f"Secret({self._masked()!r})"

    def __str__(self) -> str:
        return self._masked()

    def __eq__(self, other: object) -> bool:
        import hmac

        if isinstance(other, Secret):
            other = other._value
        return isinstance(other, str) and hmac.compare_digest(self._value.encode(), other.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> Any:
        raise TypeError("secrets are not pickled")


class UsdMicros(int):
    """A non-negative dollar amount from a venue (float or string), held as micro-USD."""


class SignedUsdMicros(int):
    """A dollar amount that may be negative (P&L), held as micro-USD."""


class DecimalText(str):
    """A number from a venue kept as exact decimal text (multipliers, rolls): no float drift."""


def _dec_hook(tp: type, obj: Any) -> Any:
    if tp is UsdMicros or tp is SignedUsdMicros:
        if isinstance(obj, bool):
            raise ValueError("expected an amount, got a boolean")
        try:
            return tp(usd_from_venue(obj, allow_negative=tp is SignedUsdMicros))
        except MoneyError as exc:
            raise ValueError(str(exc)) from None
    if tp is DecimalText:
        if isinstance(obj, bool) or not isinstance(obj, (int, float, str)):
            raise ValueError("expected a number")
        try:
            value = Decimal(repr(obj)) if isinstance(obj, float) else Decimal(str(obj))
        except InvalidOperation:
            raise ValueError(f"{obj!r} is not a number") from None
        if not value.is_finite():
            raise ValueError(f"{obj!r} is not finite")
        return DecimalText(format(value.normalize(), "f") if value == value.to_integral_value() else str(value))
    if tp is Secret:
        if not isinstance(obj, str):
            raise ValueError("expected a string")
        return Secret(obj)
    raise NotImplementedError(tp)


def decode(data: Any, tp: type[T]) -> T:
    """Convert parsed JSON into `tp` leniently; raises `msgspec.ValidationError` on a bad shape."""
    return msgspec.convert(data, tp, strict=False, dec_hook=_dec_hook)


_routed_transport: httpx.BaseTransport | None = None


@contextlib.contextmanager
def routed_through(transport: httpx.BaseTransport) -> Iterator[httpx.BaseTransport]:
    """Every client created inside the block (on any thread) sends through `transport` unless it is
    given its own: how a run's venue answers are recorded and played back (supervisor/replay.py).
    Clients created before or after the block are not affected."""
    global _routed_transport
    previous, _routed_transport = _routed_transport, transport
    try:
        yield transport
    finally:
        _routed_transport = previous


class ServiceClient:
    """Base URL + bearer key + timeout + error mapping + safe retries, over `httpx.Client`."""

    service: ClassVar[str] = "venue"
    refunded_5xx: ClassVar[frozenset[str]] = frozenset()
    """Error codes this service sends with a 5xx only after undoing the spend (the casino's
    `withdrawal_failed`: the balance is refunded before it answers). They are definite refusals
    (`VenueRejected`, `details["refunded"] = True`), not unknown outcomes."""

    def __init__(
        self,
        base_url: str,
        api_key: str | Secret | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
        retries: int = 2,
        backoff_s: float = 0.25,
        max_backoff_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        settle_s: float | None = None,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.settle_s = timeout_s if settle_s is None else settle_s
        """How long to wait after a TIMED-OUT spend before looking it up (the server may still be
        working on it). Other failures are looked up at once: the server has already answered."""
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._now_ms: Callable[[], int] = now_ms or (lambda: int(time.time() * 1000))
        """Our clock (epoch ms), the one spends' times are given in."""
        self.venue_skew_ms: int | None = None
        """The venue's clock minus ours, from the `Date` header of its last answer (None before
        any); look-ups refuse to prove absence by time when it exceeds `lookup.SKEW_MS` / 2."""
        self._key: Secret | None = None if api_key is None else Secret(api_key)
        # A given transport (tests, fault injection, a replay's recording or playback: see
        # `routed_through`) gets its own client; otherwise connections and the SSL context are shared
        # by every client of this base URL (venue/client/pool.py).
        transport = transport or _routed_transport
        self._http = (httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport, headers=HEADERS)
                      if transport is not None else None)

    # ── key handling ──────────────────────────────────────────────────────────────────────

    @property
    def has_key(self) -> bool:
        return self._key is not None

    def set_api_key(self, api_key: str | Secret | None) -> None:
        self._key = None if api_key is None else Secret(api_key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, key={'set' if self._key else 'none'})"

    # ── lifecycle ─────────────────────────────────────────────────────────────────────────

    def close(self) -> None:
        """Close this client: its own connection pool if it has one (the shared pool stays)."""
        self._closed = True
        if self._http is not None:
            self._http.close()

    @property
    def closed(self) -> bool:
        return getattr(self, "_closed", False)

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ── one request, mapped to a result or a venue error ─────────────────────────────────

    def _headers(self, auth: bool, idempotency_key: str | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if auth:
            if self._key is None:
                raise VenueRejected(self.service, "this call needs an API key; none is set", code="no_api_key")
            headers["authorization"] = f"Bearer {self._key.reveal()}"
        if idempotency_key is not None:
            headers["idempotency-key"] = idempotency_key
        return headers

    def request_json(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
        idempotency_key: str | None = None,
    ) -> Any:
        """Send once; return the parsed JSON of a 2xx, or raise the matching `VenueError`."""
        response = self._send(method, path, body=body, params=params, auth=auth, idempotency_key=idempotency_key)
        return self._interpret(f"{method} {path}", response)

    def request_text(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                     auth: bool = True) -> str:
        """Send once; return the text of a 2xx (CSV exports), or raise the matching `VenueError`."""
        response = self._send(method, path, params=params, auth=auth)
        return self._interpret(f"{method} {path}", response, text=True)

    def _send(self, method: str, path: str, *, body: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None, auth: bool = True,
              idempotency_key: str | None = None) -> httpx.Response:
        headers = self._headers(auth, idempotency_key)
        where = f"{method} {path}"
        if self.closed:
            raise RuntimeError(f"{type(self).__name__} is closed")
        try:
            if self._http is not None:
                return self._http.request(method, path, json=body, params=params, headers=headers)
            with SHARED.borrow(self.base_url, self.timeout_s) as http:
                return http.request(method, path, json=body, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            raise VenueUnavailable(self.service, f"{where}: timed out ({type(exc).__name__})", code="timeout") from None
        except httpx.HTTPError as exc:
            raise VenueUnavailable(self.service, f"{where}: {type(exc).__name__}", code="transport") from None

    def _interpret(self, where: str, response: httpx.Response, *, text: bool = False) -> Any:
        status = response.status_code
        self._note_date(response)
        if text and 200 <= status < 300:
            try:
                return response.content.decode("utf-8")
            except UnicodeDecodeError:
                raise VenueUnavailable(self.service, f"{where}: {status} with an unreadable body", code="garbage",
                                       status=status) from None
        try:
            data = json.loads(response.content, parse_constant=lambda _: None)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than any answer we read
            data = None
        if 200 <= status < 300:
            if not isinstance(data, (dict, list)):
                raise VenueUnavailable(self.service, f"{where}: {status} with an unreadable body", code="garbage",
                                       status=status)
            return data
        payload = {k: v for k, v in data.items() if k != "_info"} if isinstance(data, dict) else {}
        code = payload.get("error") if isinstance(payload.get("error"), str) else None
        message = payload.get("message") if isinstance(payload.get("message"), str) else None
        if status == 429:
            raise VenueRateLimited(self.service, message or f"{where}: rate limited", code=code or "rate_limited",
                                   status=status, details=payload)
        if status >= 500 and code in self.refunded_5xx:
            raise VenueRejected(self.service, message or f"{where}: {code}", code=code, status=status,
                                details={**payload, "refunded": True})
        if 400 <= status < 500 and code:
            raise VenueRejected(self.service, message or f"{where}: {code}", code=code, status=status,
                                details=payload)
        raise VenueUnavailable(self.service, message or f"{where}: HTTP {status}", code=code or f"http_{status}",
                               status=status, details=payload)

    def _note_date(self, response: httpx.Response) -> None:
        header = response.headers.get("date")
        if not header:
            return
        try:
            venue_ms = int(parsedate_to_datetime(header).timestamp() * 1000)
        except (TypeError, ValueError, IndexError):
            return
        self.venue_skew_ms = venue_ms - self._now_ms()

    def venue_now_ms(self) -> int | None:
        """The venue's clock now, as its last `Date` header put it against ours (None before any)."""
        return None if self.venue_skew_ms is None else self._now_ms() + self.venue_skew_ms

    def clocks_agree(self) -> bool:
        """Whether our clock and the venue's (its last `Date`, one-second resolution) agree within
        half the look-up allowance; unknown counts as agreeing only before any answer was read."""
        from venue.client.lookup import SKEW_MS

        return self.venue_skew_ms is None or abs(self.venue_skew_ms) <= SKEW_MS // 2

    def _parse(self, data: Any, build: Callable[[Any], T], where: str) -> T:
        """`build(data)`, with any sign that the answer is not the shape we read — a missing key, a
        wrong type, a list for an object, a number that is not a number — reported as
        `VenueUnavailable` (`unexpected_response`) naming the call, never as a stray exception."""
        try:
            return build(data)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError, MoneyError,
                msgspec.ValidationError, RecursionError) as exc:
            raise VenueUnavailable(self.service, f"{where}: unexpected response ({type(exc).__name__}: {exc})",
                                   code="unexpected_response") from None

    def decode(self, data: Any, tp: type[T], where: str) -> T:
        """`decode`, with a shape mismatch reported as `VenueUnavailable` (an answer we cannot read)."""
        try:
            return decode(data, tp)
        except msgspec.ValidationError as exc:
            raise VenueUnavailable(self.service, f"{where}: unexpected response ({exc})", code="unexpected_response") \
                from None

    # ── safe calls ────────────────────────────────────────────────────────────────────────

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0-based): exponential, with jitter."""
        return min(self.max_backoff_s, self.backoff_s * (2**attempt)) * (0.5 + random.random() / 2)

    def retry_safe(self, call: Callable[[], T]) -> T:
        """Run a call that changes nothing, retrying transport failures, 5xx and 429s."""
        for attempt in range(self.retries + 1):
            try:
                return call()
            except (VenueUnavailable, VenueRateLimited):
                if attempt >= self.retries:
                    raise
                self._sleep(self.backoff(attempt))
        raise AssertionError("unreachable")

    def get(self, path: str, tp: type[T], *, params: dict[str, Any] | None = None, auth: bool = True) -> T:
        """A GET, retried with backoff, decoded into `tp`."""
        where = f"GET {path}"
        return self.retry_safe(lambda: self.decode(self.request_json("GET", path, params=params, auth=auth), tp,
                                                   where))

    def post(self, path: str, tp: type[T], body: dict[str, Any] | None = None, *, auth: bool = True,
             idempotency_key: str | None = None) -> T:
        """A POST sent exactly once (no retry: it may be a spend), decoded into `tp`."""
        data = self.request_json("POST", path, body=body or {}, auth=auth, idempotency_key=idempotency_key)
        return self.decode(data, tp, f"POST {path}")

    def wait_settle(self, error: VenueUnavailable) -> None:
        """After a lost spend: wait `settle_s` if it TIMED OUT (the server may still be working on
        it); other failures were answered by the server, so there is nothing to wait for."""
        if error.code == "timeout" and self.settle_s > 0:
            self._sleep(self.settle_s)

    def spend_once(self, what: str, send: Callable[[], T], lookup: Callable[[], T | Lookup[T] | None], *,
                   attempts: int = 3,
                   details: dict[str, Any] | None = None,
                   settle: Callable[[VenueUnavailable], None] | None = None) -> T:
        """Run a spend at most once, whatever the network does: request, then look up, then resend.

        `send()` makes the request once. After a `VenueUnavailable` (the answer was lost: the spend
        may or may not have happened) `settle(error)` runs (default: one backoff step), then
        `lookup()`: a result (or a `Lookup` FOUND) means the spend happened (returned as it was
        rebuilt); None (or a `Lookup` ABSENT) proves it did not, so it is sent again, after a
        backoff, up to `attempts` times; a `Lookup` UNKNOWN ends in `outcome_unknown`. A 429 is retried
        after backoff without a lookup (the venue refused before doing anything).

        Ends with the result, or raises: `VenueRejected` from `send` (a definite refusal, nothing
        spent); `VenueNotApplied` when every attempt was lost and each lookup proved nothing
        happened; the last `VenueRateLimited` when the venue kept refusing with 429; and
        `VenueUnavailable` with code `outcome_unknown` when a lookup failed or could not decide
        (then nothing is sent again). `what` names the spend in messages ("bet 'm-1'").
        """
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        info = dict(details or {})
        last: VenueUnavailable | VenueRateLimited | None = None
        for attempt in range(attempts):
            if attempt:
                self._sleep(self.backoff(attempt - 1))
            try:
                return send()
            except VenueRateLimited as exc:
                last = exc
                continue
            except VenueUnavailable as exc:
                last = exc
            if settle is None:
                self._sleep(self.backoff(0))
            else:
                settle(last)
            try:
                found = lookup()
            except (VenueUnavailable, VenueRateLimited) as exc:
                raise VenueUnavailable(self.service, f"{what}: outcome unknown ({last.message}; lookup: {exc.message})",
                                       code="outcome_unknown", details={**info, "lookup_error": exc.code}) from None
            if isinstance(found, Lookup):
                if found.presence is Presence.UNKNOWN:
                    raise VenueUnavailable(self.service, f"{what}: outcome unknown ({last.message}; {found.reason})",
                                           code="outcome_unknown", details={**info, "lookup": "unknown"})
                found = found.value if found.presence is Presence.FOUND else None
            if found is not None:
                return found
        assert last is not None
        if isinstance(last, VenueRateLimited):
            raise last
        raise VenueNotApplied(self.service, f"{what} not applied after {attempts} attempts: {last.message}",
                              code="not_applied", details={**info, "last_error": last.code})


__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DecimalText",
    "Lookup",
    "Presence",
    "Secret",
    "ServiceClient",
    "SignedUsdMicros",
    "UsdMicros",
    "VenueError",
    "decode",
]
