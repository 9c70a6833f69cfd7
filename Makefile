# Lightbox: the two set-up commands are `make run` and `make test` (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
HOST ?= 127.0.0.1
STAMP := $(VENV)/.installed

.PHONY: run test install demo-db serve lint messages chromium

run: install demo-db serve ## install, migrate, load the demo and serve at http://127.0.0.1:8000

test: install chromium ## ruff, then the whole test suite (DATABASE_URL/REDIS_URL choose PostgreSQL/Redis)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -n 2 --durations=30

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# links made without a request (the demo's notices, invitations from manage.py) name the address
# served here, port included, unless LIGHTBOX_BASE_URL is set
demo-db serve: export LIGHTBOX_BASE_URL ?= http://$(HOST):$(PORT)

demo-db:
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo

serve:
	$(VENV)/bin/uvicorn portal.asgi:application --host $(HOST) --port $(PORT) --no-server-header

lint:
	$(VENV)/bin/ruff check .

messages: ## refresh the translation catalogues and compile them
	$(PY) manage.py makemessages --all --ignore=.venv --ignore=var --ignore=tests
	$(PY) manage.py compilemessages --ignore=.venv

chromium: ## Debian's Chromium drives the browser tests (never `playwright install`)
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "Browser tests need Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; }
