# The table of contents of the project: `make help` lists every target with one line each.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

CACHE_DIR := $(or $(CLINICAL_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/clinical-platform)
UV_VERSION := 0.13.8
UV := $(CACHE_DIR)/uv-$(UV_VERSION)/bin/uv
TOOLS_BIN := $(CACHE_DIR)/bin
LOCALINFRA := PYTHONPATH=infra/local python3 -m localinfra
# mypy runs once per folder: every service has tests/unit/test_process.py, and one run would see
# those as the same module.
MYPY_TARGETS := libs/platform libs/testing libs/cli libs/protos/generate.py libs/protos/tests infra/local tests conftest.py examples deploy/helm \
	$(wildcard services/*) $(wildcard bench)
# The interpreter comes from the machine (.python-version pins 3.11); uv never downloads one.
export UV_PYTHON_DOWNLOADS := never
export PATH := $(TOOLS_BIN):$(PATH)

.PHONY: help
help: ## Show this list
	@grep -hE '^[a-z][a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(UV):
	@echo "installing uv $(UV_VERSION) into $(CACHE_DIR)"
	@python3 -m venv "$(CACHE_DIR)/uv-$(UV_VERSION)"
	@"$(CACHE_DIR)/uv-$(UV_VERSION)/bin/pip" install --quiet "uv==$(UV_VERSION)"

.PHONY: venv
venv: $(UV) ## Install the Python workspace (.venv) from uv.lock
	@$(UV) sync --all-packages --locked --quiet

.PHONY: run
run: venv ## Run the local servers and every service in the foreground (Ctrl-C stops all)
	@$(UV) run --no-sync python infra/local/run_platform.py

.PHONY: token
token: venv ## Print a Keycloak token: make -s token LOGIN=clinician SCOPE="user/*.cruds" (or CLIENT=partner-lab-system)
ifneq ($(LOGIN)$(CLIENT),)
	@$(UV) run --no-sync python infra/keycloak/token.py $(if $(LOGIN),--user $(LOGIN),--client $(CLIENT)) --scope "$(SCOPE)"
else
	@$(UV) run --no-sync python -m clinical_platform.devtokens --subject "$(or $(SUBJECT),dev-$(or $(ROLE),user))" \
		$(foreach r,$(ROLE),--role $(r)) $(foreach p,$(PRIVILEGE),--privilege $(p)) $(if $(MFA),--mfa) \
		$(if $(PATIENT_ID),--patient-id $(PATIENT_ID)) $(foreach s,$(SERVICE),--service $(s))
endif

.PHONY: test
test: venv infra-install ## Run the whole test suite (starts the local servers when needed)
	@$(UV) run --no-sync pytest -m "not deploy"

.PHONY: test-unit
test-unit: venv ## Run the fast unit tests only (no servers)
	@$(UV) run --no-sync pytest -m unit

.PHONY: test-integration
test-integration: venv infra-install ## Run the tests against the real servers
	@$(UV) run --no-sync pytest -m "integration or e2e"

.PHONY: test-e2e
test-e2e: venv infra-install ## Run the e2e tests only (services as processes, public gRPC API)
	@$(UV) run --no-sync pytest -m e2e

.PHONY: eval-matching
eval-matching: venv infra-install ## Link quality of patient matching on FEBRL1 (QUICK=1: 200 records, checks the targets)
	@$(UV) run --no-sync python -m bench.matching_eval $(if $(QUICK),--records $(or $(RECORDS),200))

.PHONY: lint
lint: venv ## ruff (lint + format check) and mypy --strict on our code
	@$(UV) run --no-sync ruff check .
	@$(UV) run --no-sync ruff format --check .
	@for target in $(MYPY_TARGETS); do $(UV) run --no-sync mypy "$$target"; done

.PHONY: proto
proto: venv ## Regenerate the Python stubs in libs/protos from proto/
	@$(LOCALINFRA) tools buf >/dev/null
	@cd proto && buf format -w && buf lint
	@$(UV) run --no-sync python libs/protos/generate.py

.PHONY: proto-check
proto-check: venv ## Fail on buf lint/format errors, breaking changes or stale stubs
	@$(LOCALINFRA) tools buf >/dev/null
	@cd proto && buf lint && buf format --diff --exit-code
	@if git rev-parse --verify --quiet origin/main >/dev/null; then \
		cd proto && buf breaking --against '../.git#ref=origin/main,subdir=proto'; fi
	@$(UV) run --no-sync python libs/protos/generate.py --check

.PHONY: bench
bench: venv infra-install ## Run the benchmarks (ratios in one run); BENCH_ARGS="--seconds 1" shortens
	@$(UV) run --no-sync python -m bench $(BENCH_ARGS)

.PHONY: restore-drill
restore-drill: venv infra-install ## Back up, restore into a fresh second stack, rebuild, verify and compare; prints the recovery time
	@$(UV) run --no-sync python -m tests.drill.restore_drill

.PHONY: infra-install
infra-install: ## Download and build the local servers (cached in ~/.cache/clinical-platform)
	@$(LOCALINFRA) install

.PHONY: infra-up
infra-up: ## Start Kafka, PostgreSQL, FerretDB, OpenBao and Keycloak on 127.0.0.1 (a no-op when running)
	@$(LOCALINFRA) up

.PHONY: infra-down
infra-down: ## Stop the local servers (their data stays in .infra/)
	@$(LOCALINFRA) down

.PHONY: infra-status
infra-status: ## Show whether each local server runs, and where
	@$(LOCALINFRA) status

.PHONY: infra-env
infra-env: ## Print export lines for the servers: eval "$(make -s infra-env)"
	@$(LOCALINFRA) env

.PHONY: infra-reset
infra-reset: ## Stop the local servers and delete their data
	@$(LOCALINFRA) reset

.PHONY: tools
CHECKOV_VERSION := 3.3.30
tools: venv ## Build and cache buf, helm, tflint, tofu, the deploy checkers and a local kube-apiserver (see README)
	@$(LOCALINFRA) tools >/dev/null
	@# checkov has dependency pins of its own: its own environment, beside the workspace's.
	@UV_TOOL_DIR="$(CACHE_DIR)/uv-tools" UV_TOOL_BIN_DIR="$(TOOLS_BIN)" \
		$(UV) tool install --quiet --python 3.11 "checkov==$(CHECKOV_VERSION)"

.PHONY: image
image: ## Build the platform image (one for every service) where a Docker or Podman engine answers
	@if docker info >/dev/null 2>&1; then docker build -t clinical-platform:$(or $(TAG),dev) .; \
	elif podman info >/dev/null 2>&1; then podman build -t clinical-platform:$(or $(TAG),dev) .; \
	else echo "make image: skipped, no Docker or Podman engine answers on this machine"; fi

.PHONY: deploy-check
deploy-check: tools ## Check the Helm chart and Terraform: lint, schema, and an install into a local kube-apiserver
	@$(UV) run --no-sync pytest -m deploy tests/deploy
