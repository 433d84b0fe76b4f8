# Two commands: `make run` starts the whole service, `make test` runs every test.
# A fresh machine needs only Python 3.11, pip, gcc (and Node for the mobile app).

SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)

.PHONY: run test install lint openapi bench clean-data

run: install
	$(UV) run quorum run

test: install
	$(UV) run pytest
	bash mobile/scripts/ci.sh

install: .venv/.installed

.venv/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python python3.11
	@touch $@

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

lint: install
	$(UV) run ruff check .

openapi: install
	$(UV) run quorum openapi --write

bench: install
	$(UV) run python bench/api_latency.py

clean-data:
	rm -rf .quorum
