"""The deploy files say what the code does: docker-compose.yml and deploy/kubernetes/ set only
environment variables the settings read, give every service the secrets it refuses to start
without and only its own database, point the gateway at the internal listeners, probe the
health routes every listener has, and keep the public listeners the only public ones.

The schemas (is this a valid Deployment? a valid compose file?) are checked by
`make check-deploy` with kubernetes-validate and docker-compose; this file checks what no
schema knows. It reads files only."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from services.activity_log.settings import ActivityLogSettings
from services.gateway.settings import GatewaySettings
from services.intake.settings import IntakeSettings
from services.ticket_core.settings import TicketCoreSettings
from shared.settings import SystemSettings
from tests.support.infrastructure import REPO_ROOT

KUBERNETES = REPO_ROOT / "deploy" / "kubernetes"
COMPOSE = REPO_ROOT / "docker-compose.yml"
SERVICES = ("ticket-core", "activity-log", "intake", "gateway")
SETTINGS: dict[str, type[BaseSettings]] = {
    "ticket-core": TicketCoreSettings,
    "activity-log": ActivityLogSettings,
    "intake": IntakeSettings,
    "gateway": GatewaySettings,
}
WITH_DATABASE = ("ticket-core", "activity-log", "intake")
PUBLIC_SERVICES = {"gateway", "intake-widget"}
SECRETS_EVERY_SERVICE_NEEDS = {"HELPDESK_JWT_SECRET", "HELPDESK_INTERNAL_SECRETS"}


def variables(settings: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias if isinstance(alias, str) else f"{prefix}{name}".upper())
    return names


READ_BY: dict[str, set[str]] = {name: variables(type_) for name, type_ in SETTINGS.items()}
READ_BY_ANY = set().union(*READ_BY.values())


def database_variable(service: str) -> str:
    return f"{service.replace('-', '_').upper()}_DATABASE_URL"


# ---------------------------------------------------------------- Kubernetes


def kubernetes_objects() -> Iterator[dict[str, Any]]:
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield document


OBJECTS = list(kubernetes_objects())


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in OBJECTS if o["kind"] == kind}


DEPLOYMENTS = of_kind("Deployment")
SERVICE_OBJECTS = of_kind("Service")
SECRET_KEYS = set(of_kind("Secret")["helpdesk"]["stringData"])
CONFIG = of_kind("ConfigMap")["helpdesk"]["data"]
JOB = of_kind("Job")["helpdesk-migrate"]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def environment(workload: dict[str, Any]) -> dict[str, Any]:
    """Each variable of the container: its value, or its valueFrom, plus the ConfigMap's."""
    found: dict[str, Any] = {}
    for source in container(workload).get("envFrom", []):
        assert source["configMapRef"]["name"] == "helpdesk"
        found.update(CONFIG)
    for item in container(workload).get("env", []):
        found[item["name"]] = item.get("value", item.get("valueFrom"))
    return found


def test_every_service_is_a_deployment_and_nothing_else_is() -> None:
    assert set(DEPLOYMENTS) == set(SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_a_deployment_runs_its_service_module(service: str) -> None:
    args = container(DEPLOYMENTS[service])["args"]
    module = f"services.{service.replace('-', '_')}"
    assert args == ["python", "-m", module]
    assert importlib.util.find_spec(f"{module}.__main__") is not None


@pytest.mark.parametrize("service", SERVICES)
def test_a_deployment_sets_only_variables_its_service_reads(service: str) -> None:
    unknown = set(environment(DEPLOYMENTS[service])) - READ_BY[service]
    assert not unknown, f"{service} sets variables no setting reads: {sorted(unknown)}"


@pytest.mark.parametrize("service", SERVICES)
def test_a_deployment_has_the_secrets_its_service_needs_and_no_other_database(
    service: str,
) -> None:
    env = environment(DEPLOYMENTS[service])
    for name in SECRETS_EVERY_SERVICE_NEEDS:
        assert "secretKeyRef" in env[name], f"{service}: {name} must come from the Secret"
    databases = {name for name in env if name.endswith("_DATABASE_URL")}
    assert databases == ({database_variable(service)} if service in WITH_DATABASE else set())
    for name in databases:
        assert "secretKeyRef" in env[name], f"{service}: {name} holds a password"
    assert env["HELPDESK_ENV"] == "production"
    # One Kafka user per service, named as in README's ACL table.
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["KAFKA_SASL_USERNAME"] == service
    assert env["KAFKA_SASL_PASSWORD"]["secretKeyRef"]["key"] == f"kafka-{service}-password"


def test_every_secret_reference_names_a_key_of_the_example_secret() -> None:
    for workload in [*DEPLOYMENTS.values(), JOB]:
        for value in environment(workload).values():
            if isinstance(value, dict) and "secretKeyRef" in value:
                assert value["secretKeyRef"]["name"] == "helpdesk"
                assert value["secretKeyRef"]["key"] in SECRET_KEYS


@pytest.mark.parametrize("service", SERVICES)
def test_probes_ask_the_health_routes_on_declared_ports(service: str) -> None:
    spec = container(DEPLOYMENTS[service])
    ports = {port["name"] for port in spec["ports"]}
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert spec[probe]["httpGet"]["port"] in ports


@pytest.mark.parametrize("service", SERVICES)
def test_listeners_bind_the_ports_the_containers_declare(service: str) -> None:
    env = environment(DEPLOYMENTS[service])
    prefix = service.replace("-", "_").upper()
    declared = {
        port["name"]: port["containerPort"] for port in container(DEPLOYMENTS[service])["ports"]
    }
    listeners = (
        {"http": "HTTP"} if service != "intake" else {"widget": "HTTP", "internal": "INTERNAL"}
    )
    assert set(declared) == set(listeners)
    for port_name, variable in listeners.items():
        assert env[f"{prefix}_{variable}_HOST"] == "0.0.0.0"  # the pod's own address
        assert int(env[f"{prefix}_{variable}_PORT"]) == declared[port_name]


@pytest.mark.parametrize("service", SERVICES)
def test_pods_run_as_non_root_on_a_read_only_filesystem_with_limits(service: str) -> None:
    pod = DEPLOYMENTS[service]["spec"]["template"]["spec"]
    for workload in (DEPLOYMENTS[service], JOB):
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["automountServiceAccountToken"] is False
        security = container(workload)["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        resources = container(workload)["resources"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[kind])
    assert DEPLOYMENTS[service]["spec"]["replicas"] >= 2
    assert pod["securityContext"]["runAsUser"] == 65534  # deploy/Dockerfile's USER


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def pods_of(selector: dict[str, str]) -> list[str]:
    return [
        name
        for name, workload in DEPLOYMENTS.items()
        if labels_match(selector, workload["spec"]["template"]["metadata"]["labels"])
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_every_deployment_has_a_disruption_budget_that_leaves_one_pod(service: str) -> None:
    budgets = [
        budget
        for budget in of_kind("PodDisruptionBudget").values()
        if pods_of(budget["spec"]["selector"]["matchLabels"]) == [service]
    ]
    assert len(budgets) == 1
    assert 1 <= budgets[0]["spec"]["minAvailable"] < DEPLOYMENTS[service]["spec"]["replicas"]


def test_services_select_one_deployment_and_name_its_ports() -> None:
    for name, service in SERVICE_OBJECTS.items():
        selected = pods_of(service["spec"]["selector"])
        assert len(selected) == 1, f"Service {name} selects {selected}"
        ports = {port["name"] for port in container(DEPLOYMENTS[selected[0]])["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {name}: no port {port['targetPort']}"


def test_only_the_gateway_and_the_widget_listener_are_public() -> None:
    public = {n for n, s in SERVICE_OBJECTS.items() if s["spec"].get("type") != "ClusterIP"}
    assert public == PUBLIC_SERVICES
    widget = SERVICE_OBJECTS["intake-widget"]["spec"]["ports"]
    assert [port["targetPort"] for port in widget] == ["widget"]


def service_address(url: str) -> tuple[str, str]:
    """The Service and target port name an in-cluster URL reaches."""
    match = re.fullmatch(r"http://([a-z-]+):(\d+)", url)
    assert match, url
    service = SERVICE_OBJECTS[match[1]]
    ports = [p for p in service["spec"]["ports"] if p["port"] == int(match[2])]
    assert len(ports) == 1, url
    return match[1], str(ports[0]["targetPort"])


def test_the_gateway_calls_the_internal_listeners() -> None:
    env = environment(DEPLOYMENTS["gateway"])
    assert service_address(env["GATEWAY_TICKET_CORE_URL"]) == ("ticket-core", "http")
    assert service_address(env["GATEWAY_ACTIVITY_LOG_URL"]) == ("activity-log", "http")
    assert service_address(env["GATEWAY_INTAKE_URL"]) == ("intake-internal", "internal")


def test_the_migration_job_creates_the_topics_and_migrates_every_database() -> None:
    command = " ".join(container(JOB)["args"])
    assert "helpdesk topics" in command
    assert "helpdesk migrate" in command
    env = environment(JOB)
    assert {database_variable(s) for s in WITH_DATABASE} <= set(env)
    assert set(env) <= variables(SystemSettings) | set().union(*(READ_BY[s] for s in WITH_DATABASE))


# ---------------------------------------------------------------- docker-compose.yml


COMPOSE_FILE: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
COMPOSED = COMPOSE_FILE["services"]


def compose_environment(service: str) -> set[str]:
    """The variables a compose service gets: its environment and its secrets' targets."""
    definition = COMPOSED[service]
    names = set(definition.get("environment", {}))
    for secret in definition.get("secrets", []):
        names.add(secret if isinstance(secret, str) else secret.get("target", secret["source"]))
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_compose_gives_a_service_what_it_needs_and_only_its_database(service: str) -> None:
    names = compose_environment(service)
    assert names <= READ_BY_ANY, sorted(names - READ_BY_ANY)
    assert names >= SECRETS_EVERY_SERVICE_NEEDS
    databases = {name for name in names if name.endswith("_DATABASE_URL")}
    assert databases == ({database_variable(service)} if service in WITH_DATABASE else set())


@pytest.mark.parametrize("service", SERVICES)
def test_compose_runs_replicas_with_health_checks_restarts_after_kafka(service: str) -> None:
    definition = COMPOSED[service]
    replicas = definition["deploy"]["replicas"]
    assert replicas >= 2
    assert definition["restart"] == "unless-stopped"
    port = {"ticket-core": 8101, "activity-log": 8102, "intake": 8103, "gateway": 8000}[service]
    assert f"127.0.0.1:{port}/readyz" in " ".join(definition["healthcheck"]["test"])
    if service == "intake":
        assert "127.0.0.1:8113/readyz" in " ".join(definition["healthcheck"]["test"])
    assert definition["depends_on"]["kafka"] == {"condition": "service_healthy"}
    assert definition["read_only"] is True
    for mapping in definition.get("ports", []):
        # A range with a host port for each replica.
        host, _, target = str(mapping).rpartition(":")
        first, _, last = host.partition("-")
        assert last, f"{mapping}: a fixed host port fits one replica only"
        assert int(last) - int(first) + 1 >= replicas, mapping
        assert int(target) in {8000, 8103}, "only the gateway and the widget are published"


def test_compose_makes_one_database_per_service_and_secrets_it_mounts() -> None:
    created = re.findall(
        r"CREATE DATABASE (\w+);", (REPO_ROOT / "deploy/postgres/init-databases.sql").read_text()
    )
    assert sorted(created) == sorted(s.replace("-", "_") for s in WITH_DATABASE)
    made = (REPO_ROOT / "deploy/compose-secrets.sh").read_text()
    for name, secret in COMPOSE_FILE["secrets"].items():
        assert secret["file"] == f"./deploy/secrets/{name}"
        assert name in made or "_DATABASE_URL" in name, f"compose-secrets.sh never makes {name}"
    for database in created:
        assert database in made
    migrate = COMPOSED["migrate"]
    assert "helpdesk topics" in " ".join(migrate["command"])
    assert "helpdesk migrate" in " ".join(migrate["command"])
    assert migrate["depends_on"]["kafka"] == {"condition": "service_healthy"}


def test_the_image_runs_as_the_user_the_manifests_name() -> None:
    dockerfile = (REPO_ROOT / "deploy/Dockerfile").read_text()
    assert re.search(r"^USER 65534:65534$", dockerfile, re.MULTILINE)
    assert Path(REPO_ROOT / "deploy/docker-entrypoint.sh").stat().st_mode & 0o111
