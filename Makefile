# The two commands a new machine needs (see README.md):
#   make up     run the whole system on this machine
#   make test   run every test (lint, types, unit, integration, e2e)
# Each installs what it needs: a virtualenv with the Python packages and, when
# run as root, the Debian packages below (and a running PostgreSQL for tests).

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
RUN_DEB := mosquitto mosquitto-clients ffmpeg
TEST_DEB := $(RUN_DEB) rtsp-server-perl chromium postgresql
PG_DSN  ?= host=127.0.0.1 port=5432 user=postgres password=postgres dbname=test

.PHONY: up test lint system-run system-test postgres clean

up: system-run $(STAMP)
	$(BIN)/cctv up

test: system-test postgres $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	CCTV_TEST_POSTGRES_DSN="$(PG_DSN)" $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Debian packages, installed only when missing and only when we are root.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (install them as root)"; exit 0; fi; \
	echo "installing:$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null
endef

system-run:
	$(call apt_install,$(RUN_DEB))

system-test:
	$(call apt_install,$(TEST_DEB))

# A PostgreSQL the tests can reach over TCP: start the cluster if it is down and,
# on a fresh install, give the postgres role a password and create `test`.
postgres:
	@if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && [ "$$(id -u)" = 0 ]; then \
	  for v in $$(ls /etc/postgresql 2>/dev/null); do \
	    pg_ctlcluster --skip-systemctl-redirect $$v main start 2>/dev/null || true; done; \
	  for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	fi
	@if [ "$$(id -u)" = 0 ] && ! psql "$(PG_DSN)" -c 'select 1' >/dev/null 2>&1; then \
	  runuser -u postgres -- psql -q -c "ALTER ROLE postgres PASSWORD 'postgres'" && \
	  (runuser -u postgres -- psql -q -tc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 || \
	   runuser -u postgres -- createdb test); \
	fi

clean:
	rm -rf $(VENV) .cctv .pytest_cache .mypy_cache .ruff_cache
