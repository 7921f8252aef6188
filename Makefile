# The two commands that matter: `make run` and `make test` (see README.md).
.PHONY: run test setup model migrate services lint format admin bench clean

PY := .venv/bin/python

run: setup model migrate ## set up and run Rasa, the action server and the gateway together
	@echo ""
	@echo "  Web widget demo   http://127.0.0.1:8000/"
	@echo "  Work-order lookup http://127.0.0.1:8000/lookup"
	@echo "  Agent console     http://127.0.0.1:8000/console/   (create a login: make admin)"
	@echo "  REST channel      http://127.0.0.1:8000/webhooks/rest/webhook"
	@echo "  Health            http://127.0.0.1:8000/healthz  /readyz"
	@echo "  (Rasa 127.0.0.1:5005 and actions 127.0.0.1:5055 are private)"
	@echo ""
	.venv/bin/honcho start -f Procfile

test: setup services model ## the whole test suite (what CI runs)
	scripts/test.sh

setup: ## both virtualenvs and a development .env, only when missing or changed
	scripts/bootstrap.sh

model: setup ## train the Rasa model if data/, domain.yml or config.yml changed
	scripts/train.sh

migrate: setup ## migrate the database (SQLite under var/ by default) and seed categories
	$(PY) -m store.migrate

services: ## start PostgreSQL/Redis if stopped; install chromium and docker-compose for tests
	scripts/services.sh

admin: setup migrate ## create the first console admin (asks for a password)
	$(PY) -m bot.console.cli create-admin --username $${USERNAME_ADMIN:-admin}

lint:
	.venv/bin/ruff check .

format:
	.venv/bin/ruff format .

bench: setup model ## print the benchmark ratios (see bench/README.md)
	$(PY) bench/classify.py
	$(PY) bench/nlu.py

clean:
	rm -rf var/rasa-results .pytest_cache
