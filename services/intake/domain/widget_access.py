"""Who may use an assistant's widget, and how much: widget keys, allowed origins, the
visitor's signed email, token buckets, and the bounded tally of refusals.

Pure: no I/O; the time is always passed in (monotonic seconds for buckets, UTC for minutes).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from shared.contracts.formats import ORIGIN
from shared.contracts.widget import (
    ALLOWED_ORIGINS_MAX_COUNT,
    ORIGIN_MAX_LENGTH,
    WIDGET_KEY_HEADER,
    RefusalCount,
    RefusalCounts,
    RejectionReason,
    RequestStatus,
    WidgetRequestAnswer,
)

WIDGET_KEY_PREFIX = "wk_"
IDENTITY_SECRET_PREFIX = "wis_"
DEFAULT_PORTS = {"http": 80, "https": 443}
# What one refusal keeps for diagnostics: enough to recognise it, never the visitor's text.
SAMPLE_DETAIL_MAX_LENGTH = 300
UNATTRIBUTED = ""  # refusals that name no configured assistant (a made-up key, say)


class Refused(Exception):
    """A call or a request that cannot go on, with the reason the widget shows."""

    def __init__(
        self, reason: RejectionReason, detail: str, *, retry_after_seconds: int | None = None
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retry_after_seconds = retry_after_seconds


# -- keys and secrets ---------------------------------------------------------------------------


def new_widget_key() -> str:
    """Publishable, unguessable: 192 random bits."""
    return WIDGET_KEY_PREFIX + secrets.token_urlsafe(24)


def new_identity_secret() -> str:
    return IDENTITY_SECRET_PREFIX + secrets.token_urlsafe(32)


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time equality; nothing equals a missing value."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def check_widget_key(
    given: str | None, current: str | None, previous: str | None, assistant_id: str
) -> None:
    """Raise `invalid_widget_key` unless `given` is the assistant's current key."""
    if same_secret(given, current):
        return
    if not given:
        raise Refused(
            RejectionReason.INVALID_WIDGET_KEY,
            f"Send the assistant's widget key in the {WIDGET_KEY_HEADER} header; an admin "
            "finds it in the assistant's ticket settings.",
        )
    if same_secret(given, previous):
        raise Refused(
            RejectionReason.INVALID_WIDGET_KEY,
            f"This widget key of assistant {assistant_id!r} was replaced; put the assistant's "
            "current widget key (in its ticket settings) into the widget.",
        )
    raise Refused(
        RejectionReason.INVALID_WIDGET_KEY,
        f"The {WIDGET_KEY_HEADER} is not the widget key of assistant {assistant_id!r}; copy "
        "it from the assistant's ticket settings.",
    )


def unknown_widget_key(given: str | None) -> Refused:
    if not given:
        return Refused(
            RejectionReason.INVALID_WIDGET_KEY,
            f"Send the assistant's widget key in the {WIDGET_KEY_HEADER} header; an admin "
            "finds it in the assistant's ticket settings.",
        )
    return Refused(
        RejectionReason.INVALID_WIDGET_KEY,
        f"The {WIDGET_KEY_HEADER} is no assistant's widget key (a replaced key is refused "
        "too); copy the current one from the assistant's ticket settings.",
    )


# -- origins --------------------------------------------------------------------------------------


def canonical_origin(value: str) -> str:
    """`scheme://host[:port]`, lowercase, without a default port; `ValueError` says why not."""
    if len(value) > ORIGIN_MAX_LENGTH:
        raise ValueError(f"an origin has at most {ORIGIN_MAX_LENGTH} characters")
    parts = urlsplit(value.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"{value[:80]!r}: the scheme must be http or https")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(
            f"{value[:80]!r}: an origin is scheme://host[:port] only, without path, query, "
            "fragment or user"
        )
    try:
        port = parts.port
    except ValueError as error:
        raise ValueError(f"{value[:80]!r}: the port is not a number from 0 to 65535") from error
    host = (parts.hostname or "").lower()
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"{value[:80]!r}: the origin has no host")
    if not ORIGIN.matches(value.strip()):
        raise ValueError(f"{value[:80]!r} is not {ORIGIN.rule}")
    shown_host = f"[{host}]" if ":" in host else host
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{shown_host}"
    return f"{scheme}://{shown_host}:{port}"


def origin_or_none(value: str | None) -> str | None:
    """The canonical form of an origin; None for what is none (`null`, malformed, absent)."""
    try:
        return canonical_origin(value) if value is not None else None
    except ValueError:
        return None


def clean_allowed_origins(values: list[str]) -> tuple[str, ...]:
    """The list an admin saves, canonical and without repeats (order kept)."""
    if len(values) > ALLOWED_ORIGINS_MAX_COUNT:
        raise ValueError(f"at most {ALLOWED_ORIGINS_MAX_COUNT} allowed origins")
    return tuple(dict.fromkeys(canonical_origin(value) for value in values))


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """No list: any origin. A call without `Origin` comes from no browser page (a server, a
    script), which could claim any origin anyway: the list guards browsers only."""
    if not allowed or origin is None:
        return True
    # `null` (sandboxed frames, files) and anything malformed is in no list.
    return origin_or_none(origin) in allowed


def check_origin(origin: str | None, allowed: tuple[str, ...], assistant_id: str) -> None:
    if not origin_allowed(origin, allowed):
        raise Refused(
            RejectionReason.ORIGIN_NOT_ALLOWED,
            f"Pages of {str(origin)[:80]!r} may not use assistant {assistant_id!r}'s widget; "
            "an admin can add the site to the assistant's allowed_origins.",
        )


def preflight_allowed(origin: str | None, listed_somewhere: bool, some_open: bool) -> bool:
    """A preflight carries no key, so it cannot know the assistant: it is answered for an
    origin that at least one assistant accepts (it lists that origin, or lists none). The
    call that follows is checked against its own assistant's list."""
    return origin_or_none(origin) is not None and (listed_somewhere or some_open)


# -- identity verification -----------------------------------------------------------------------


def contact_signature(identity_secret: str, email: str) -> str:
    """What the site's server sends as `contact.signature` for the visitor's email."""
    return hmac.new(identity_secret.encode(), email.encode(), hashlib.sha256).hexdigest()


def check_contact_signature(
    identity_secret: str | None, email: str | None, signature: str | None
) -> None:
    """With identity verification on: the email must come with its signature."""
    if identity_secret is None:
        raise Refused(
            RejectionReason.CONTACT_NOT_VERIFIED,
            "Identity verification is on but the assistant has no identity secret yet; an "
            "admin makes one with POST .../identity-secret.",
        )
    if not email or not signature:
        raise Refused(
            RejectionReason.CONTACT_NOT_VERIFIED,
            "This assistant verifies visitors: send contact.email and contact.signature, the "
            "lowercase hex HMAC-SHA256 of the email made by your site's server with the "
            "assistant's identity secret.",
        )
    if not same_secret(signature, contact_signature(identity_secret, email)):
        raise Refused(
            RejectionReason.CONTACT_NOT_VERIFIED,
            "contact.signature is not the HMAC-SHA256 of contact.email with the assistant's "
            "current identity secret (lowercase hex, of the email exactly as sent).",
        )


# -- client address ------------------------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(value: str) -> tuple[Network, ...]:
    """`INTAKE_TRUSTED_PROXIES`: comma-separated addresses or networks (CIDR)."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False)
        for part in value.split(",")
        if part.strip()
    )


def _in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: tuple[Network, ...]
) -> str:
    """The address a limit counts against: the connection's, unless it comes from a trusted
    proxy; then the nearest address in `X-Forwarded-For` that is not a trusted proxy (the
    ones further left were written by the client and may be made up)."""
    address = peer or "unknown"
    if not forwarded_for or not _in(address, trusted_proxies):
        return address
    for hop in reversed([part.strip() for part in forwarded_for.split(",")][-20:]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address  # a malformed chain: count the proxy, not a made-up value
        if not _in(hop, trusted_proxies):
            return hop
    return address


# -- token buckets -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BucketRule:
    """`capacity` calls at once, refilled evenly over `per_seconds`."""

    capacity: int
    per_seconds: float

    @property
    def refill_per_second(self) -> float:
        return self.capacity / self.per_seconds


@dataclass
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """One bucket per key (a client address, an assistant), in this process's memory. At most
    `max_keys` buckets: past that, full buckets are forgotten first (a full bucket is the same
    as none), then the longest unused."""

    def __init__(self, rule: BucketRule, max_keys: int = 100_000) -> None:
        self.rule = rule
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, bucket: _Bucket, now: float) -> float:
        elapsed = max(0.0, now - bucket.at)
        return min(float(self.rule.capacity), bucket.tokens + elapsed * self.rule.refill_per_second)

    def take(self, key: str, now: float) -> float | None:
        """Take one token; `None` when taken, else the seconds until one is there."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.rule.capacity), now)
            self._buckets[key] = bucket
            self._forget_some(now)
        else:
            self._buckets.move_to_end(key)
        bucket.tokens, bucket.at = self._level(bucket, now), now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / self.rule.refill_per_second

    def _forget_some(self, now: float) -> None:
        if len(self._buckets) <= self.max_keys:
            return
        for key in [
            k for k, b in self._buckets.items() if self._level(b, now) >= self.rule.capacity
        ]:
            del self._buckets[key]
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)


def rate_limited(retry_after: float, what: str) -> Refused:
    seconds = max(1, math.ceil(retry_after))
    return Refused(
        RejectionReason.RATE_LIMITED,
        f"Too many widget calls {what}; try again in {seconds} seconds.",
        retry_after_seconds=seconds,
    )


# -- the tally of refusals -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefusalSample:
    assistant_id: str
    reason: RejectionReason
    detail: str
    request_id: str | None
    conversation_id: str | None
    received_at: datetime

    def answer(self) -> WidgetRequestAnswer:
        """What the widget is told when it asks for a request that was refused."""
        return WidgetRequestAnswer(
            request_id=self.request_id or "",
            status=RequestStatus.REJECTED,
            reason=self.reason,
            detail=self.detail,
        )


@dataclass
class RefusalBatch:
    """What a flush writes: counts per (assistant, reason, minute) and the newest samples."""

    counts: dict[tuple[str, str, datetime], int] = field(default_factory=dict)
    samples: list[RefusalSample] = field(default_factory=list)


class RefusalTally:
    """Refusals as they happen, until the next flush writes them in one transaction: a flood
    of refused calls costs memory bounded by (assistants x reasons x minutes) between two
    flushes and `sample_size` samples per assistant, and no write per call."""

    def __init__(self, sample_size: int, samples_per_minute: int | None = None) -> None:
        self.sample_size = sample_size
        # A flood is counted in full but sampled sparsely: each stored sample is a write (and
        # on PostgreSQL a dead row once a newer one replaces it), so at most so many a minute.
        self.samples_per_minute = samples_per_minute
        self._batch = RefusalBatch()
        self._samples_per_assistant: dict[str, int] = {}
        self._sampled_in_minute: dict[tuple[str, datetime], int] = {}

    def record(
        self,
        assistant_id: str,
        reason: RejectionReason,
        detail: str,
        at: datetime,
        *,
        request_id: str | None = None,
        conversation_id: str | None = None,
        sampled: bool = True,
    ) -> None:
        minute = at.replace(second=0, microsecond=0)
        key = (assistant_id, reason.value, minute)
        self._batch.counts[key] = self._batch.counts.get(key, 0) + 1
        if not sampled or assistant_id == UNATTRIBUTED:
            return
        if self.samples_per_minute is not None:
            this_minute = (assistant_id, minute)
            if self._sampled_in_minute.get(this_minute, 0) >= self.samples_per_minute:
                return
            if len(self._sampled_in_minute) > 10_000 or not any(
                m == minute for _, m in list(self._sampled_in_minute)[-1:]
            ):
                # A new minute: the budgets of earlier minutes are no longer needed.
                self._sampled_in_minute = {
                    k: v for k, v in self._sampled_in_minute.items() if k[1] >= minute
                }
            self._sampled_in_minute[this_minute] = self._sampled_in_minute.get(this_minute, 0) + 1
        self._batch.samples.append(
            RefusalSample(
                assistant_id,
                reason,
                detail[:SAMPLE_DETAIL_MAX_LENGTH],
                request_id,
                conversation_id,
                at,
            )
        )
        kept = self._samples_per_assistant.get(assistant_id, 0) + 1
        self._samples_per_assistant[assistant_id] = kept
        if kept > 2 * self.sample_size:
            self._trim()

    def _trim(self) -> None:
        """Keep only the newest `sample_size` samples per assistant."""
        kept: list[RefusalSample] = []
        per: dict[str, int] = {}
        for sample in reversed(self._batch.samples):
            if per.get(sample.assistant_id, 0) < self.sample_size:
                per[sample.assistant_id] = per.get(sample.assistant_id, 0) + 1
                kept.append(sample)
        self._batch.samples = kept[::-1]
        self._samples_per_assistant = per

    def pending(self) -> int:
        return sum(self._batch.counts.values())

    def drain(self) -> RefusalBatch:
        """Everything recorded since the last drain (newest samples only), and start afresh."""
        self._trim()
        batch, self._batch = self._batch, RefusalBatch()
        self._samples_per_assistant = {}
        return batch

    def put_back(self, batch: RefusalBatch) -> None:
        """A flush that failed: keep its counts for the next one (samples too, bounded)."""
        for key, count in batch.counts.items():
            self._batch.counts[key] = self._batch.counts.get(key, 0) + count
        self._batch.samples = [*batch.samples, *self._batch.samples]
        self._trim()


def refusals_per_minute(assistant_id: str, items: list[RefusalCount]) -> RefusalCounts:
    """The counts of an assistant's refusals, newest minute first, with their totals."""
    totals: dict[str, int] = {}
    for item in items:
        totals[item.reason.value] = totals.get(item.reason.value, 0) + item.count
    return RefusalCounts(assistant_id=assistant_id, items=items, totals=totals)
