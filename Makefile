# fairpack's interface. A fresh machine needs two commands: `make demo` and `make test`.
# Everything either installs goes into .venv/ (Python) and $(FAIRPACK_CACHE) (control plane).

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
# -P: never put the working directory on sys.path. The repo root holds a folder named
# `operator`, which would shadow the standard library's module of that name.
PY := $(VENV)/bin/python -P
# Development tooling (local control plane, demo) is the package hack/fairpack_dev.
export PYTHONPATH := $(CURDIR)/hack
export FAIRPACK_CACHE ?= $(HOME)/.cache/fairpack
PYTEST_ARGS ?=

.PHONY: help venv binaries lint typecheck test test-unit cluster-up cluster-down demo bench kind-e2e chart-check manifests docs-diagram

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -P -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed  ## create .venv with fairpack and its test tools

binaries:  ## build (once, then cached by version) etcd, Kubernetes, KWOK and helm
	hack/build-binaries.sh

# mypy and import-linter cannot follow setuptools' package-dir mapping through an editable
# install, so they read a tree laid out as the import names are: links for mypy (so its
# messages name the real files), a copy for import-linter (which does not follow links).
PACKAGE_FOLDERS := fairpack/cli:cli solver:solver extender:extender operator:operator
define package-tree
	rm -rf $(1) && mkdir -p $(1)/fairpack
	$(2) $(CURDIR)/fairpack/__init__.py $(CURDIR)/fairpack/py.typed $(1)/fairpack/
	for pair in $(PACKAGE_FOLDERS); do $(2) $(CURDIR)/$${pair%%:*} $(1)/fairpack/$${pair##*:}; done
endef

typecheck: $(VENV)/.installed
	$(call package-tree,.build/typecheck,ln -s)
	MYPYPATH=.build/typecheck $(VENV)/bin/mypy -p fairpack
	MYPYPATH=.build/typecheck:hack $(VENV)/bin/mypy -p fairpack_dev
	MYPYPATH=.build/typecheck:hack $(VENV)/bin/mypy --explicit-package-bases tests $(wildcard bench/*.py)

lint: $(VENV)/.installed typecheck  ## ruff, mypy (strict) and the layer contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	for script in hack/*.sh; do bash -n "$$script"; done
	$(call package-tree,.build/imports,cp -r)
	cd .build/imports && $(CURDIR)/$(VENV)/bin/lint-imports --config $(CURDIR)/pyproject.toml --no-cache --no-logo

test-unit: $(VENV)/.installed  ## unit tests only (plain data, no cluster)
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

test: $(VENV)/.installed binaries lint  ## everything: lint, unit tests, tests on the real control plane
	$(VENV)/bin/pytest $(PYTEST_ARGS)

cluster-up: $(VENV)/.installed binaries  ## start the local control plane with the small GPU inventory
	$(PY) -m fairpack_dev.cluster up

cluster-down: $(VENV)/.installed  ## stop the local control plane and remove its state
	$(PY) -m fairpack_dev.cluster down

demo: $(VENV)/.installed binaries  ## the main job: local cluster, 100 GPU nodes, fairpack, sample workloads
	$(PY) -m fairpack_dev.demo $(DEMO_ARGS)

# chart-check needs helm and the kube-scheduler binary (which loads the rendered configuration);
# manifests needs only helm (chart.py renders with `helm template`, dashboard.py runs nothing).
# Depending on the files, not on `binaries`, means nothing is built when they are there: running
# hack/build-binaries.sh while another build of the same version is under way would collide in
# its source directory, and helm is built before Kubernetes, so helm's presence proves nothing.
# Each file builds only its own component: a fresh machine's `make manifests` builds no Kubernetes.
# (Defined before the targets that use them: make expands prerequisites as it reads a rule.)
PINNED = $(shell sed -n 's/^$(1)=//p' hack/versions.env)
KUBE_SCHEDULER := $(FAIRPACK_CACHE)/bin/kubernetes-$(call PINNED,KUBERNETES_VERSION)/kube-scheduler
HELM := $(FAIRPACK_CACHE)/bin/helm-$(call PINNED,HELM_VERSION)/helm
$(KUBE_SCHEDULER):
	hack/build-binaries.sh kubernetes
$(HELM):
	hack/build-binaries.sh helm

manifests: $(VENV)/.installed $(HELM)  ## regenerate manifests/fairpack.yaml and the chart's Grafana dashboard
	$(PY) -m fairpack_dev.dashboard
	$(PY) -m fairpack_dev.chart

chart-check: $(VENV)/.installed $(KUBE_SCHEDULER) $(HELM)  ## helm lint --strict, render with default and other values, check the scheduler config
	$(PY) -m fairpack_dev.chart --check
	$(VENV)/bin/pytest tests/unit/test_chart.py tests/unit/test_dashboard.py $(PYTEST_ARGS)

docs-diagram:  ## render docs/architecture.svg from docs/architecture.dot (installs Graphviz if missing)
	command -v dot >/dev/null || (apt-get update -qq && apt-get install -y -qq graphviz)
	dot -Tsvg docs/architecture.dot -o docs/architecture.svg

bench: $(VENV)/.installed binaries  ## run every benchmark side by side with its baselines (figures: docs/benchmarks.md)
	set -e; for b in bench/bench_*.py; do echo "== $$b"; $(VENV)/bin/python $$b; done

kind-e2e: $(VENV)/.installed  ## (needs Docker) the same tests against a kind cluster
	hack/kind-e2e.sh
