"""The gate every widget call passes before anything else, cheapest first: the widget key, the
page's origin, this process's budget for the client address, then the assistant's. A refusal
raises `Refused` and is counted (and sampled) in the tally, never stored as a row each.

Pure: no I/O; the clock is given (monotonic seconds for the buckets, UTC for the tally).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from .requests import AssistantSettings
from .widget_access import (
    UNATTRIBUTED,
    Network,
    RefusalTally,
    Refused,
    TokenBuckets,
    check_origin,
    check_widget_key,
    rate_limited,
    unknown_widget_key,
)

CallKind = Literal["write", "read"]


@dataclass
class WidgetGuard:
    """This process's limits on widget calls: token buckets per client address (calls that
    write; polls and preflights have their own, larger ones) and per assistant, and the
    refusals not yet written. In memory: each intake process limits on its own."""

    address_writes: TokenBuckets
    address_reads: TokenBuckets
    assistant_writes: TokenBuckets
    tally: RefusalTally
    trusted_proxies: tuple[Network, ...] = ()
    clock: Callable[[], float] = field(default=time.monotonic)

    def admit(
        self,
        settings: AssistantSettings | None,
        *,
        widget_key: str | None,
        origin: str | None,
        address: str,
        kind: CallKind,
        now: datetime,
    ) -> AssistantSettings:
        """`settings`: the assistant whose current or replaced key `widget_key` is, if any."""
        try:
            if settings is None:
                raise unknown_widget_key(widget_key)
            check_widget_key(
                widget_key, settings.widget_key, settings.previous_widget_key, settings.assistant_id
            )
            check_origin(origin, settings.allowed_origins, settings.assistant_id)
            self._spend(address, settings.assistant_id, kind)
        except Refused as refusal:
            self.count(refusal, settings.assistant_id if settings else None, now)
            raise
        return settings

    def count(
        self,
        refusal: Refused,
        assistant_id: str | None,
        now: datetime,
        request_id: str | None = None,
        conversation_id: str | None = None,
    ) -> None:
        """`assistant_id` None: the call names no configured assistant."""
        self.tally.record(
            assistant_id or UNATTRIBUTED,
            refusal.reason,
            refusal.detail,
            now,
            request_id=request_id,
            conversation_id=conversation_id,
        )

    def may_read(self, address: str) -> bool:
        """Spend one of the address's reads (polls, preflights), if it has one left."""
        return self.address_reads.take(address, self.clock()) is None

    def _spend(self, address: str, assistant_id: str, kind: CallKind) -> None:
        buckets = self.address_writes if kind == "write" else self.address_reads
        if (wait := buckets.take(address, self.clock())) is not None:
            raise rate_limited(wait, "from your address")
        # Only a caller with the key, within its own address's budget, spends the assistant's.
        if (
            kind == "write"
            and (wait := self.assistant_writes.take(assistant_id, self.clock())) is not None
        ):
            raise rate_limited(wait, f"for assistant {assistant_id!r}")
