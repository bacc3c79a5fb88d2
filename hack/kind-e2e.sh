#!/usr/bin/env bash
# make kind-e2e: the same cluster tests (tests/cluster, the same fixtures) against a kind cluster.
# Needs a running Docker engine, so it cannot run on machines without one (such as CI here).
#
#   hack/kind-e2e.sh [pytest args...]      KEEP_CLUSTER=1 keeps the kind cluster afterwards
#
# Steps: kind (go install, pinned) -> node image of the pinned Kubernetes version (kind builds it
# from the release) -> cluster -> fairpack image (Dockerfile) loaded into kind -> KWOK (the pinned
# release's manifest) with hack/kwok/stages.yaml -> the chart (its fairpack-scheduler profile; the
# extender ignorable, as on the local control plane; no operator replicas) -> pytest -m cluster with
# FAIRPACK_KUBECONFIG (tests marked local_only, whose webhook on this machine kind's API server
# cannot reach, skip).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# shellcheck source=versions.env
source hack/versions.env
cache="${FAIRPACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fairpack}"
name="${KIND_CLUSTER_NAME:-fairpack-e2e}"
kubeconfig="$cache/kind-$name.kubeconfig"
log() { printf '[kind-e2e] %s\n' "$*" >&2; }

if ! docker info >/dev/null 2>&1; then
  log "needs a running Docker engine (docker info failed); the local control plane (make test) does not"
  exit 2
fi

bin="$(hack/build-binaries.sh)"  # kubectl and helm at the pinned versions
kubectl="$bin/kubernetes-$KUBERNETES_VERSION/kubectl"
helm="$bin/helm-$HELM_VERSION/helm"
kind="$bin/kind-$KIND_VERSION/kind"
if [ ! -x "$kind" ]; then
  log "installing kind $KIND_VERSION"
  GOBIN="$(dirname "$kind")" CGO_ENABLED=0 go install "sigs.k8s.io/kind@$KIND_VERSION"
fi

node_image="${KIND_NODE_IMAGE:-fairpack/kind-node:$KUBERNETES_VERSION}"
if ! docker image inspect "$node_image" >/dev/null 2>&1; then
  log "building kind node image $node_image from Kubernetes $KUBERNETES_VERSION"
  "$kind" build node-image --type release "$KUBERNETES_VERSION" --image "$node_image"
fi

if ! "$kind" get clusters | grep -qx "$name"; then
  "$kind" create cluster --name "$name" --image "$node_image" --wait 180s
fi
"$kind" get kubeconfig --name "$name" >"$kubeconfig"
if [ "${KEEP_CLUSTER:-0}" != 1 ]; then
  trap '"$kind" delete cluster --name "$name"' EXIT
fi
export KUBECONFIG="$kubeconfig"

version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/fairpack/Chart.yaml)"
image="fairpack/fairpack:$version"
log "building $image"
docker build -t "$image" .
"$kind" load docker-image "$image" --name "$name"

log "installing KWOK $KWOK_VERSION"
"$kubectl" apply -f "https://github.com/kubernetes-sigs/kwok/releases/download/$KWOK_VERSION/kwok.yaml"
"$kubectl" -n kube-system rollout status deployment/kwok-controller --timeout=180s
"$kubectl" apply -f hack/kwok/stages.yaml

# The operator tests run their own operator (as on the local control plane): the chart's
# operator is scaled to zero so that no second one acts on the same objects.
log "installing the chart (release fairpack; operator scaled to 0)"
"$helm" upgrade --install fairpack charts/fairpack --namespace fairpack-system --create-namespace \
  --set image.tag="$version" --set scheduler.extender.ignorable=true \
  --set operator.replicas=0 --set operator.pdb.enabled=false --wait --timeout 5m

FAIRPACK_KUBECONFIG="$kubeconfig" .venv/bin/pytest -m cluster tests/cluster "$@"
