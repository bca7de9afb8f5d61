"""A stand-in identity provider for RS256 tokens: an RSA key pair, its public key published
as a JWKS document over real HTTP, and tokens signed with the private key."""

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class IdentityProvider:
    def __init__(self, key_id: str = "test-key-1") -> None:
        self.key_id = key_id
        self.private_key = new_rsa_key()
        self.requests = 0
        public = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        self._jwks = {"keys": [{**public, "kid": key_id, "use": "sig", "alg": "RS256"}]}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.requests += 1
                body = json.dumps(provider._jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/.well-known/jwks.json"

    def __enter__(self) -> "IdentityProvider":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def token(
        self,
        member_id: UUID | str,
        workspace_id: UUID | str,
        *,
        key: rsa.RSAPrivateKey | None = None,
        key_id: str | None = None,
        ttl: timedelta = timedelta(minutes=5),
        **claims: Any,
    ) -> str:
        now = datetime.now(UTC)
        payload = {
            "sub": str(member_id),
            "workspace_id": str(workspace_id),
            "iat": now,
            "exp": now + ttl,
            **claims,
        }
        return jwt.encode(
            payload,
            key or self.private_key,
            algorithm="RS256",
            headers={"kid": key_id or self.key_id},
        )
