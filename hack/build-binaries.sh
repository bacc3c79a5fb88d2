#!/usr/bin/env bash
# Build the local control plane's binaries from pinned upstream Go modules and cache them
# outside the repository, keyed by version, so that a second run builds nothing.
#
#   hack/build-binaries.sh [COMPONENT...]   build what is missing of the named components
#                                           (etcd, kwok, helm, kubernetes; default: all),
#                                           print the bin directory
#
# Naming components lets a target that needs only helm (`make manifests`) skip building
# Kubernetes, which takes most of the time on a fresh machine.
#
# Output: $FAIRPACK_CACHE/bin/{kubernetes-<v>,etcd-<v>,kwok-<v>,helm-<v>}/<binary>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${FAIRPACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fairpack}"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

log() { printf '[build-binaries] %s\n' "$*" >&2; }

# Run a command with its output (go's "downloading ..." chatter) appended to LOG; on failure
# print the log's tail, so errors stay visible.
#   quiet LOG COMMAND...
quiet() {
  local logfile="$1"; shift
  if ! "$@" >>"$logfile" 2>&1; then
    log "failed: $* (last lines of $logfile:)"
    tail -n 30 "$logfile" >&2
    return 1
  fi
}

# Run a build into a scratch dir and move it into place only when it succeeded, so an
# interrupted build never leaves a half-filled cache entry behind.
publish() {
  local dest="$1" scratch="$2"
  rm -rf "$dest"
  mv "$scratch" "$dest"
}

# Build Go packages through a throw-away wrapper module: `go get -tool` each package at the
# pinned version, apply the given `go mod edit` flags (replaces) first, then `go build`.
#   wrapper_build DEST VERSION "EDIT_FLAGS" "LDFLAGS" NAME=PACKAGE...
wrapper_build() {
  local dest="$1" v="$2" edits="$3" ldflags="$4"; shift 4
  local names=() spec
  for spec in "$@"; do names+=("${spec%%=*}"); done
  if all_present "$dest" "${names[@]}"; then return; fi
  local work="$cache/src/$(basename "$dest")"
  log "building ${names[*]} $v in $work"
  mkdir -p "$work"
  (
    cd "$work"
    rm -rf go.mod go.sum out
    go mod init fairpack.local/build >/dev/null 2>&1
    # shellcheck disable=SC2086
    [ -z "$edits" ] || go mod edit $edits
    for spec in "$@"; do quiet "$work/build.log" go get -tool "${spec#*=}@$v"; done
    mkdir out
    for spec in "$@"; do
      log "  go build ${spec%%=*}"
      quiet "$work/build.log" go build -trimpath -ldflags "-s -w $ldflags" -o "out/${spec%%=*}" "${spec#*=}"
    done
  )
  publish "$dest" "$work/out"
}

build_kubernetes() {
  local v="$KUBERNETES_VERSION" dest="$cache/bin/kubernetes-$KUBERNETES_VERSION"
  # Checked here too, before the module download below: a cached build needs neither the
  # module cache nor the network.
  if all_present "$dest" kube-apiserver kube-controller-manager kube-scheduler kubectl; then return; fi
  local minor="${v#v1.}"; minor="${minor%%.*}"
  # k8s.io/kubernetes points its staging modules at ./staging; a consumer must pin each
  # of them to the matching v0.X.Y tag instead.
  local upstream_mod edits="" m
  upstream_mod="$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  for m in $(grep -oE '^\s*k8s.io/[a-z0-9-]+ => ./staging' "$upstream_mod" | awk '{print $1}'); do
    edits+=" -replace=$m=$m@v0.${v#v1.}"
  done
  local date ldflags="" pkgpath
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for pkgpath in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkgpath.gitVersion=$v -X $pkgpath.gitMajor=1 -X $pkgpath.gitMinor=$minor"
    ldflags+=" -X $pkgpath.gitTreeState=clean -X $pkgpath.buildDate=$date"
  done
  wrapper_build "$dest" "$v" "$edits" "$ldflags" \
    kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
    kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
    kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
    kubectl=k8s.io/kubernetes/cmd/kubectl
}

build_etcd() {
  # etcd's server module replaces its sibling modules with ../ paths; requiring the server
  # at a tag lets the wrapper resolve the siblings at the same tag.
  wrapper_build "$cache/bin/etcd-$ETCD_VERSION" "$ETCD_VERSION" "" "" \
    etcd=go.etcd.io/etcd/server/v3
}

build_module_binary() {
  # build_module_binary NAME VERSION PACKAGE: for modules that `go install` builds as they are.
  local name="$1" v="$2" pkg="$3" dest="$cache/bin/$1-$2"
  if all_present "$dest" "$name"; then return; fi
  log "building $name $v"
  local scratch="$cache/src/$name-$v.out"
  rm -rf "$scratch" && mkdir -p "$scratch"
  GOBIN="$scratch" quiet "$cache/src/$name-$v.log" go install -trimpath -ldflags "-s -w" "$pkg@$v"
  publish "$dest" "$scratch"
}

all_present() {
  local dir="$1"; shift
  local b
  for b in "$@"; do [ -x "$dir/$b" ] || return 1; done
}

components=("$@")
[ "${#components[@]}" -gt 0 ] || components=(etcd kwok helm kubernetes)
for component in "${components[@]}"; do
  case "$component" in
    etcd | kwok | helm | kubernetes) ;;
    *) log "unknown component: $component (etcd, kwok, helm, kubernetes)"; exit 2 ;;
  esac
done
mkdir -p "$cache/bin" "$cache/src"
for component in "${components[@]}"; do
  case "$component" in
    etcd) build_etcd ;;
    kwok) build_module_binary kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok ;;
    helm) build_module_binary helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm ;;
    kubernetes) build_kubernetes ;;
  esac
done
echo "$cache/bin"
