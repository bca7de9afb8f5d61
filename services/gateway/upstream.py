"""Calls to the internal services. Every call carries a credential signed for that service
(`shared/internal_auth.py`), made here and nowhere else, so no route can forget it. An
upstream problem+json answer is passed through as is, so the dashboard sees the owning
service's own `code` and `detail`. A service run as several replicas is a list of addresses:
the first that takes the connection answers."""

from collections.abc import Collection, Sequence
from typing import Any
from uuid import UUID

import httpx
import structlog

from shared.contracts.api import Capability, Role
from shared.http import REQUEST_ID_HEADER
from shared.internal_auth import InternalTokenSigner
from shared.problems import Problem, ProblemError

# A service that is down is restarted (by the supervisor, or the cluster) in a second or
# two, and another replica may already answer: a client should come back soon.
UPSTREAM_RETRY_AFTER_SECONDS = 2

log = structlog.get_logger(__name__)


class UpstreamProblem(ProblemError):
    def __init__(self, problem: Problem, retry_after: str | None = None) -> None:
        # A service whose database is away says when to retry; the client is told the same.
        super().__init__(
            problem.status,
            problem.code,
            problem.detail,
            errors=problem.errors,
            headers={"Retry-After": retry_after} if retry_after else None,
        )
        self.problem = problem


class Upstream:
    """One internal service, reached over HTTP with a credential naming the caller. `clients`
    are its replicas, in the order this gateway tries them."""

    def __init__(
        self, name: str, clients: Sequence[httpx.AsyncClient], signer: InternalTokenSigner
    ) -> None:
        if not clients:
            raise ValueError(f"{name}: no address to reach it at")
        self.name = name  # also the credential's audience
        self._clients = list(clients)
        self._signer = signer

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def ping(self) -> None:
        """For readiness: the service (some replica of it) answers its health check."""
        response = await self._send("GET", "/healthz", timeout=2.0)
        response.raise_for_status()

    async def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        """The answer of the first replica that takes the connection. A refused or timed-out
        connection never reached that replica, so any request may go to the next one. An
        error after that (the replica died with the request in hand) is not retried here: the
        request may have been applied, and only its client can retry it safely (a create with
        the same `Idempotency-Key`)."""
        for client in self._clients[:-1]:
            try:
                return await client.request(method, path, **options)
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                log.warning(
                    "upstream_replica_unreachable",
                    upstream=self.name,
                    address=str(client.base_url),
                    error=repr(error),
                )
        return await self._clients[-1].request(method, path, **options)

    async def call(
        self,
        method: str,
        path: str,
        *,
        workspace_id: UUID,
        member_id: UUID | None = None,
        role: Role | None = None,
        capabilities: Collection[Capability] = (),
        request_id: str | None = None,
        json: Any = None,
        params: Any = None,
        extra_headers: dict[str, str | None] | None = None,
    ) -> Any:
        """The upstream's JSON answer (None for 204); its problem is raised as UpstreamProblem."""
        headers = {k: v for k, v in (extra_headers or {}).items() if v is not None}
        # Who is calling travels only in the signed credential, set last so that no extra
        # header can replace it.
        credential = self._signer.sign(
            self.name, workspace_id, member_id, role, capabilities=capabilities
        )
        headers["Authorization"] = f"Bearer {credential}"
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        try:
            response = await self._send(method, path, headers=headers, json=json, params=params)
        except httpx.HTTPError as error:
            log.error("upstream_unreachable", upstream=self.name, error=repr(error))
            raise ProblemError(
                503,
                "upstream_unavailable",
                f"{self.name} did not answer; retry in {UPSTREAM_RETRY_AFTER_SECONDS} seconds "
                "(with the same Idempotency-Key for a create).",
                headers={"Retry-After": str(UPSTREAM_RETRY_AFTER_SECONDS)},
            ) from error
        if response.status_code >= 400:
            problem = _problem_of(self.name, response)
            if problem.code == "invalid_internal_credential":
                # Not the dashboard user's fault: this gateway and that service do not share
                # an internal secret. Never passed on as a 401, which would say "sign in again".
                log.error("upstream_refused_credential", upstream=self.name, why=problem.detail)
                raise ProblemError(
                    502,
                    "internal_credential_refused",
                    f"{self.name} refused the gateway's internal credential; the operator must "
                    "give every service the same HELPDESK_INTERNAL_SECRETS.",
                )
            retry_after = response.headers.get("Retry-After")
            raise UpstreamProblem(
                problem, retry_after if retry_after and retry_after.isdigit() else None
            )
        return response.json() if response.content else None


def _problem_of(name: str, response: httpx.Response) -> Problem:
    try:
        return Problem.model_validate(response.json())
    except ValueError:
        log.error("upstream_bad_error", upstream=name, status=response.status_code)
        return Problem(
            title="Upstream error",
            status=502,
            code="upstream_error",
            detail=f"{name} answered {response.status_code} without a problem document.",
        )
