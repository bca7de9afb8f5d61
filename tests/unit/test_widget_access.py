"""Who may use an assistant's widget, and how much: key check, origin match, the visitor's
signed email, the client address, token buckets and the bounded tally of refusals. Pure
functions and objects, no I/O; the time is passed in."""

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from services.intake.domain.widget_access import (
    UNATTRIBUTED,
    BucketRule,
    RefusalTally,
    Refused,
    TokenBuckets,
    canonical_origin,
    check_contact_signature,
    check_origin,
    check_widget_key,
    clean_allowed_origins,
    client_address,
    contact_signature,
    new_identity_secret,
    new_widget_key,
    origin_allowed,
    parse_trusted_proxies,
    preflight_allowed,
    rate_limited,
    same_secret,
)
from shared.contracts.widget import RejectionReason

NOW = datetime(2026, 12, 2, 9, 30, 15, tzinfo=UTC)

# -- keys -----------------------------------------------------------------------------------------


def test_widget_keys_and_identity_secrets_are_new_and_long_every_time() -> None:
    keys = {new_widget_key() for _ in range(1000)}
    secrets_ = {new_identity_secret() for _ in range(1000)}
    assert len(keys) == len(secrets_) == 1000
    assert all(k.startswith("wk_") and len(k) >= 35 for k in keys)
    assert all(s.startswith("wis_") and len(s) >= 46 for s in secrets_)


def test_the_current_key_passes() -> None:
    check_widget_key("wk_current", "wk_current", "wk_old", "asst-1")


@pytest.mark.parametrize(
    ("given", "says"),
    [
        (None, "X-Widget-Key header"),
        ("", "X-Widget-Key header"),
        ("wk_old", "was replaced"),
        ("wk_guess", "is not the widget key"),
        ("wk_current ", "is not the widget key"),
    ],
)
def test_a_missing_replaced_or_wrong_key_is_refused_and_says_which(
    given: str | None, says: str
) -> None:
    with pytest.raises(Refused) as refused:
        check_widget_key(given, "wk_current", "wk_old", "asst-1")
    assert refused.value.reason is RejectionReason.INVALID_WIDGET_KEY
    assert says in refused.value.detail


def test_nothing_equals_a_missing_secret() -> None:
    assert not same_secret(None, None)
    assert not same_secret("", "")
    assert not same_secret("a", None)
    assert same_secret("a", "a")


# -- origins --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("https://Shop.Example.com", "https://shop.example.com"),
        ("https://shop.example.com:443", "https://shop.example.com"),
        ("http://localhost:80", "http://localhost"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("https://shop.example.com/", "https://shop.example.com"),
        ("https://[::1]:8443", "https://[::1]:8443"),
    ],
)
def test_origins_are_compared_in_one_form(given: str, canonical: str) -> None:
    assert canonical_origin(given) == canonical


@pytest.mark.parametrize(
    "bad",
    [
        "shop.example.com",
        "ftp://shop.example.com",
        "https://shop.example.com/path",
        "https://shop.example.com?q=1",
        "https://user@shop.example.com",
        "https://shop.example.com:99999",
        "https://",
        "null",
        "https://" + "a" * 300,
    ],
)
def test_what_is_not_scheme_host_port_is_no_origin(bad: str) -> None:
    with pytest.raises(ValueError, match=r"origin|scheme|port|host|characters"):
        canonical_origin(bad)


def test_an_allowed_origins_list_is_bounded_and_kept_without_repeats() -> None:
    assert clean_allowed_origins(["https://a.example", "https://A.example:443"]) == (
        "https://a.example",
    )
    with pytest.raises(ValueError, match="at most 20"):
        clean_allowed_origins([f"https://s{i}.example" for i in range(21)])


def test_only_listed_origins_pass_and_no_list_lets_every_origin_pass() -> None:
    allowed = ("https://shop.example.com",)
    assert origin_allowed("https://shop.example.com", allowed)
    assert origin_allowed("https://SHOP.example.com:443", allowed)
    assert not origin_allowed("https://evil.example", allowed)
    assert not origin_allowed("https://shop.example.com.evil.example", allowed)
    assert not origin_allowed("http://shop.example.com", allowed)
    assert not origin_allowed("null", allowed)
    assert origin_allowed(None, allowed)  # no browser page: nothing to restrict
    assert origin_allowed("https://anything.example", ())


def test_a_disallowed_origin_is_refused_with_how_to_fix_it() -> None:
    with pytest.raises(Refused) as refused:
        check_origin("https://evil.example", ("https://shop.example.com",), "asst-1")
    assert refused.value.reason is RejectionReason.ORIGIN_NOT_ALLOWED
    assert "allowed_origins" in refused.value.detail


def test_a_preflight_passes_only_for_an_origin_some_assistant_accepts() -> None:
    assert preflight_allowed("https://shop.example.com", listed_somewhere=True, some_open=False)
    assert preflight_allowed("https://any.example", listed_somewhere=False, some_open=True)
    assert not preflight_allowed("https://evil.example", listed_somewhere=False, some_open=False)
    assert not preflight_allowed("null", listed_somewhere=True, some_open=True)
    assert not preflight_allowed(None, listed_somewhere=True, some_open=True)


# -- identity verification ------------------------------------------------------------------------


def test_the_signature_is_lowercase_hex_hmac_sha256_of_the_email() -> None:
    expected = hmac.new(b"wis_secret", b"ada@example.com", hashlib.sha256).hexdigest()
    assert contact_signature("wis_secret", "ada@example.com") == expected
    check_contact_signature("wis_secret", "ada@example.com", expected)


@pytest.mark.parametrize(
    ("secret", "email", "signature"),
    [
        ("wis_secret", "ada@example.com", None),
        ("wis_secret", None, "00" * 32),
        ("wis_secret", "ada@example.com", "00" * 32),
        ("wis_secret", "ada@example.com", contact_signature("wis_other", "ada@example.com")),
        ("wis_secret", "eve@example.com", contact_signature("wis_secret", "ada@example.com")),
        (
            "wis_secret",
            "ada@example.com",
            contact_signature("wis_secret", "ada@example.com").upper(),
        ),
        (None, "ada@example.com", contact_signature("wis_secret", "ada@example.com")),
    ],
)
def test_a_missing_or_wrong_signature_is_refused(
    secret: str | None, email: str | None, signature: str | None
) -> None:
    with pytest.raises(Refused) as refused:
        check_contact_signature(secret, email, signature)
    assert refused.value.reason is RejectionReason.CONTACT_NOT_VERIFIED
    assert refused.value.detail


# -- client address -------------------------------------------------------------------------------


def test_the_connections_address_counts_unless_it_is_a_trusted_proxy() -> None:
    proxies = parse_trusted_proxies("10.0.0.1, 192.168.0.0/16")
    assert client_address("203.0.113.9", "1.2.3.4", ()) == "203.0.113.9"
    assert client_address("203.0.113.9", "1.2.3.4", proxies) == "203.0.113.9"
    assert client_address("10.0.0.1", "1.2.3.4", proxies) == "1.2.3.4"
    # The nearest untrusted hop counts; what the client wrote further left does not.
    assert client_address("10.0.0.1", "6.6.6.6, 1.2.3.4, 192.168.3.3", proxies) == "1.2.3.4"
    assert client_address("10.0.0.1", "not-an-address", proxies) == "10.0.0.1"
    assert client_address("10.0.0.1", None, proxies) == "10.0.0.1"
    assert client_address(None, None, proxies) == "unknown"


# -- token buckets --------------------------------------------------------------------------------


def test_a_bucket_lets_its_capacity_through_then_says_when_to_retry() -> None:
    buckets = TokenBuckets(BucketRule(capacity=3, per_seconds=60))
    assert [buckets.take("a", 0.0) for _ in range(3)] == [None, None, None]
    wait = buckets.take("a", 0.0)
    assert wait == pytest.approx(20.0)
    assert buckets.take("b", 0.0) is None  # another key has its own bucket
    assert buckets.take("a", 19.0) is not None
    assert buckets.take("a", 20.5) is None  # one token refilled
    assert buckets.take("a", 20.5) is not None
    assert buckets.take("a", 1000.0) is None  # refilled, never above capacity
    assert [buckets.take("a", 1000.0) for _ in range(3)][-1] is not None


def test_a_refusal_of_a_bucket_says_how_long_to_wait_in_whole_seconds() -> None:
    refusal = rate_limited(0.2, "from your address")
    assert refusal.reason is RejectionReason.RATE_LIMITED
    assert refusal.retry_after_seconds == 1
    assert rate_limited(19.01, "x").retry_after_seconds == 20


def test_buckets_of_many_addresses_stay_bounded_forgetting_full_ones_first() -> None:
    buckets = TokenBuckets(BucketRule(capacity=2, per_seconds=60), max_keys=100)
    buckets.take("busy", 0.0)
    buckets.take("busy", 0.0)
    for number in range(10_000):
        buckets.take(f"10.0.{number // 256}.{number % 256}", 1.0)
        buckets.take("busy", 1.0)  # in use: stays known
    assert len(buckets) <= 101
    assert buckets.take("busy", 1.0) is not None  # its empty bucket was not forgotten


# -- the tally of refusals ------------------------------------------------------------------------


def test_refusals_are_counted_per_assistant_reason_and_minute() -> None:
    tally = RefusalTally(sample_size=5)
    for second in range(90):
        tally.record(
            "asst-1", RejectionReason.ORIGIN_NOT_ALLOWED, "x", NOW + timedelta(seconds=second)
        )
    tally.record(UNATTRIBUTED, RejectionReason.INVALID_WIDGET_KEY, "x", NOW)

    batch = tally.drain()

    minute = NOW.replace(second=0)
    assert batch.counts == {
        ("asst-1", "origin_not_allowed", minute): 45,
        ("asst-1", "origin_not_allowed", minute + timedelta(minutes=1)): 45,
        (UNATTRIBUTED, "invalid_widget_key", minute): 1,
    }
    assert len(batch.samples) == 5  # the newest 5, none unattributed
    assert [s.received_at for s in batch.samples] == [
        NOW + timedelta(seconds=second) for second in range(85, 90)
    ]
    assert tally.drain().counts == {}


def test_a_flood_keeps_the_tally_bounded_between_two_flushes() -> None:
    tally = RefusalTally(sample_size=100)
    for number in range(100_000):
        tally.record(
            f"asst-{number % 3}",
            RejectionReason.RATE_LIMITED,
            "d" * 10_000,  # a long detail is cut
            NOW,
            request_id=f"req-{number}",
        )
        assert len(tally._batch.samples) <= 3 * 2 * 100 + 1
    batch = tally.drain()
    assert sum(batch.counts.values()) == 100_000
    assert len(batch.counts) == 3
    assert len(batch.samples) == 300
    assert all(len(s.detail) <= 300 for s in batch.samples)


def test_a_failed_flush_keeps_its_counts_for_the_next() -> None:
    tally = RefusalTally(sample_size=2)
    tally.record("asst-1", RejectionReason.RATE_LIMITED, "x", NOW)
    failed = tally.drain()
    tally.record("asst-1", RejectionReason.RATE_LIMITED, "x", NOW)
    tally.put_back(failed)
    assert tally.drain().counts == {("asst-1", "rate_limited", NOW.replace(second=0)): 2}


def test_a_flood_is_counted_in_full_but_sampled_at_most_so_many_a_minute() -> None:
    tally = RefusalTally(sample_size=100, samples_per_minute=20)
    for second in range(180):
        for _ in range(50):
            tally.record(
                "asst-1", RejectionReason.RATE_LIMITED, "x", NOW + timedelta(seconds=second)
            )
    batch = tally.drain()
    assert sum(batch.counts.values()) == 9_000
    per_minute: dict[datetime, int] = {}
    for sample in batch.samples:
        minute = sample.received_at.replace(second=0)
        per_minute[minute] = per_minute.get(minute, 0) + 1
    assert set(per_minute.values()) == {20}
    assert len(per_minute) == 4  # 09:30 to 09:33
