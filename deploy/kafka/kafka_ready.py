#!/usr/bin/env python3
"""Is a real Kafka broker answering at HOST:PORT?  (python3 stdlib only)

A TCP connect is not enough: the broker opens its port before it has joined
the KRaft quorum and registered itself.  So this sends a real Metadata
request and only succeeds when the answer lists at least one broker.

Metadata v4 is used: Kafka 4 removed v0-v3, and v4..v8 are the last
non-"flexible" versions, i.e. plain fixed-layout encoding with no tagged
fields, which keeps this parser tiny.  v4 is served by Kafka 1.0 .. 4.x.

A SASL listener answers nothing but SaslHandshake (and ApiVersions) before a client has
logged in, so `--sasl MECHANISM` sends a SaslHandshake v1 instead and succeeds when the broker
offers that mechanism (kafka.sh then waits for the broker itself as the super user).

Usage:  kafka_ready.py [--timeout SECONDS] [--quiet] [--sasl MECHANISM] HOST:PORT
Exit:   0  a Kafka broker answered and reported >= 1 broker
        1  nothing accepts connections there (refused / unreachable / timeout)
        2  something accepted the connection but did not answer like Kafka
        3  Kafka answered but lists no broker yet (it is still starting)
"""

import argparse
import socket
import struct
import sys

METADATA_API_KEY = 3
METADATA_VERSION = 4
SASL_HANDSHAKE_API_KEY = 17
SASL_HANDSHAKE_VERSION = 1
CORRELATION_ID = 0x4B52  # arbitrary; checked in the response
CLIENT_ID = b"helpdesk-kafka-ready"

EXIT_OK, EXIT_DOWN, EXIT_NOT_KAFKA, EXIT_NO_BROKERS = 0, 1, 2, 3


class NotKafka(Exception):
    """The peer answered, but not with a sane Kafka Metadata response."""


def build_request() -> bytes:
    # Request header v1: api_key, api_version, correlation_id, client_id.
    header = (
        struct.pack(">hhih", METADATA_API_KEY, METADATA_VERSION, CORRELATION_ID, len(CLIENT_ID))
        + CLIENT_ID
    )
    # Metadata v4 body: topics = null array (-1: "all topics", we ignore
    # them anyway), allow_auto_topic_creation = false.
    body = struct.pack(">i?", -1, False)
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def build_sasl_handshake(mechanism: str) -> bytes:
    header = (
        struct.pack(
            ">hhih", SASL_HANDSHAKE_API_KEY, SASL_HANDSHAKE_VERSION, CORRELATION_ID, len(CLIENT_ID)
        )
        + CLIENT_ID
    )
    name = mechanism.encode()
    payload = header + struct.pack(">h", len(name)) + name
    return struct.pack(">i", len(payload)) + payload


def parse_sasl_handshake(data: bytes):
    """Return (error_code, [mechanisms]) from a SaslHandshake v1 response."""
    r = Reader(data)
    if r.take(">i") != CORRELATION_ID:
        raise NotKafka("correlation id mismatch")
    error_code = r.take(">h")
    count = r.take(">i")
    if not 0 <= count <= 100:
        raise NotKafka(f"implausible mechanism count {count}")
    return error_code, [r.string() for _ in range(count)]


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise NotKafka(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


class Reader:
    """Minimal cursor over the response bytes."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise NotKafka("response truncated")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self):
        length = self.take(">h")
        if length < 0:
            return None
        raw = self.data[self.pos : self.pos + length]
        if len(raw) != length:
            raise NotKafka("response truncated")
        self.pos += length
        return raw.decode("utf-8", "replace")


def parse_brokers(data: bytes):
    """Return [(node_id, host, port)] from a Metadata v4 response."""
    r = Reader(data)
    if r.take(">i") != CORRELATION_ID:  # response header v0
        raise NotKafka("correlation id mismatch")
    r.take(">i")  # throttle_time_ms
    count = r.take(">i")
    if not 0 <= count <= 10000:
        raise NotKafka(f"implausible broker count {count}")
    brokers = []
    for _ in range(count):
        node_id = r.take(">i")
        host = r.string()
        port = r.take(">i")
        r.string()  # rack
        brokers.append((node_id, host, port))
    return brokers


def exchange(host: str, port: int, timeout: float, request: bytes):
    """Send `request`; return (EXIT_OK, response) or (an exit code, why not)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return EXIT_DOWN, f"nothing answers at {host}:{port} ({exc})"
    try:
        with sock:
            sock.sendall(request)
            size = struct.unpack(">i", recv_exact(sock, 4))[0]
            if not 0 < size < 64 * 1024 * 1024:
                raise NotKafka(f"implausible response size {size}")
            return EXIT_OK, recv_exact(sock, size)
    except (NotKafka, OSError) as exc:
        reason = f"{host}:{port} accepted a connection but gave no Kafka answer ({exc})"
        return EXIT_NOT_KAFKA, reason


def probe(host: str, port: int, timeout: float):
    code, answer = exchange(host, port, timeout, build_request())
    if code != EXIT_OK:
        return code, answer
    try:
        brokers = parse_brokers(answer)
    except NotKafka as exc:
        return EXIT_NOT_KAFKA, f"{host}:{port} gave no Kafka metadata ({exc})"
    if not brokers:
        # Port open, but the broker has not registered yet (still starting).
        return EXIT_NO_BROKERS, f"{host}:{port} answered Metadata with no brokers yet"
    listed = ", ".join(f"{node}@{bhost}:{bport}" for node, bhost, bport in brokers)
    return EXIT_OK, f"Kafka at {host}:{port} is up (brokers: {listed})"


def probe_sasl(host: str, port: int, timeout: float, mechanism: str):
    code, answer = exchange(host, port, timeout, build_sasl_handshake(mechanism))
    if code != EXIT_OK:
        return code, answer
    try:
        error_code, mechanisms = parse_sasl_handshake(answer)
    except NotKafka as exc:
        return EXIT_NOT_KAFKA, f"{host}:{port} gave no SaslHandshake answer ({exc})"
    if error_code != 0:
        offered = ", ".join(m for m in mechanisms if m) or "none"
        return EXIT_NOT_KAFKA, f"{host}:{port} does not offer {mechanism} (offers: {offered})"
    return EXIT_OK, f"Kafka at {host}:{port} offers SASL {mechanism}"


def split_address(address: str):
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SystemExit(f"kafka_ready.py: expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("address", help="HOST:PORT of the broker")
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="socket timeout in seconds (default 3)"
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    parser.add_argument(
        "--sasl", metavar="MECHANISM", help="probe a SASL listener, e.g. SCRAM-SHA-512"
    )
    args = parser.parse_args()
    host, port = split_address(args.address)
    if args.sasl:
        code, message = probe_sasl(host, port, args.timeout, args.sasl)
    else:
        code, message = probe(host, port, timeout=args.timeout)
    if not args.quiet:
        print(message, file=sys.stdout if code == EXIT_OK else sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
