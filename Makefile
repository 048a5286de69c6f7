# The whole set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint typecheck pytest bench soak demo migrate clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/paperwatch run

migrate: install
	$(BIN)/paperwatch db upgrade

lint: install
	$(BIN)/ruff check bot tests bench migrations
	$(BIN)/ruff format --check bot tests bench migrations

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: install
	$(BIN)/python -m bench.bench_match --million
	$(BIN)/python -m bench.bench_search
	$(BIN)/python -m bench.bench_relevance
	$(BIN)/python -m bench.bench_clicks
	$(BIN)/python -m bench.bench_fanout
	$(BIN)/python -m bench.bench_watches

soak: install
	$(BIN)/python -m bench.soak

demo: install
	@for q in '"knowledge distillation" OR distill*' 'diffusion -video' 'upvotes>=30 (video OR reasoning)' 'agent* benchmark'; do \
		echo; echo "=== paperwatch preview --query '$$q' ==="; \
		$(BIN)/paperwatch preview --query "$$q" --feed tests/fixtures/feeds/hf_daily/2025-10-03.json || exit $$?; \
	done
	@echo; echo "=== paperwatch recommend: three saved diffusion papers of 2025-09-30, the best of 2025-03-17 ==="
	$(BIN)/paperwatch recommend --feed tests/fixtures/feeds/hf_daily/2025-03-17.json \
		--history tests/fixtures/feeds/hf_daily/2025-09-30.json \
		--like 2509.24006 --like 2509.24695 --like 2509.25161 --top 5

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
