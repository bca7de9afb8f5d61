#!/usr/bin/env bash
# `make check-deploy` (CI runs it after `make lint`): the deploy files are valid and say what
# the code does, checked offline, with no Docker engine and no cluster:
#   1. docker-compose.yml      Debian's docker-compose: `config -q` (schema, anchors, references)
#   2. deploy/kubernetes/      kubernetes-validate --strict, against Kubernetes 1.30 and 1.37
#   3. what no schema knows    tests/unit/test_deploy_files.py (variables the settings read,
#                              secrets, probes, ports, Services, replicas; see its docstring)
# It installs what is missing: docker-compose from Debian (as root, without the Docker engine
# it recommends) and kubernetes-validate into .venv at pyproject.toml's pin.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin
KUBERNETES_VERSIONS=(1.30.0 1.37.0)
started=$SECONDS

say() { echo "check-deploy: $*"; }
fail() { echo "check-deploy: FAILED: $*" >&2; exit 1; }

[[ -x $BIN/python ]] || fail "no $BIN/python; run \`make install\` (or \`make check-deploy\`) first"

if ! command -v docker-compose >/dev/null; then
  (( EUID == 0 )) || fail "docker-compose is missing and only root can install it:
  apt-get update && apt-get install -y --no-install-recommends docker-compose"
  say "installing Debian's docker-compose (the validator only: no Docker engine)"
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp)
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-compose; } \
    >"$log" 2>&1 || { cat "$log" >&2; fail "apt-get could not install docker-compose (above)"; }
  rm -f "$log"
fi
if [[ ! -x $BIN/kubernetes-validate ]]; then
  pin=$(grep -o '"kubernetes-validate==[^"]*"' pyproject.toml | tr -d '"') \
    || fail "pyproject.toml's dev extras pin no kubernetes-validate"
  say "installing $pin into $BIN"
  "$BIN/python" -m pip install --quiet "$pin" || fail "pip install $pin failed"
fi

say "docker-compose.yml ($(docker-compose version --short 2>/dev/null || echo '?'))"
if ! output=$(docker-compose -f docker-compose.yml config -q 2>&1); then
  echo "$output" >&2
  fail "docker-compose.yml is invalid (above)"
fi

mapfile -t manifests < <(find deploy/kubernetes -name '*.yaml' | sort)
(( ${#manifests[@]} > 0 )) || fail "no manifests under deploy/kubernetes"
for version in "${KUBERNETES_VERSIONS[@]}"; do
  say "${#manifests[@]} manifests against Kubernetes $version"
  "$BIN/kubernetes-validate" --strict --quiet --kubernetes-version "$version" "${manifests[@]}" \
    || fail "deploy/kubernetes does not validate against Kubernetes $version (above)"
done

say "the deploy files against the code"
"$BIN/pytest" -q -p no:cacheprovider -o addopts="-ra --strict-markers" \
  tests/unit/test_deploy_files.py tests/unit/test_cli_topics.py \
  || fail "the deploy files disagree with the code (above)"

say "all good in $((SECONDS - started)) s"
