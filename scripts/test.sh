#!/usr/bin/env bash
# The whole suite: lint, type check (mypy on store/), pytest (unit, integration on SQLite +
# PostgreSQL + Redis, end to end with the three real processes, browser), Rasa data validation
# and Rasa test stories.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p var

status=0
step() { echo; echo "==> $*"; }

step "ruff"
.venv/bin/ruff check . || status=1

step "mypy (store/, config.py: see [tool.mypy] in pyproject.toml)"
.venv/bin/mypy || status=1

step "rasa data validate"
.venv-rasa/bin/rasa data validate --quiet || status=1

step "rasa test (tests/rasa/test_*.yml)"
.venv-rasa/bin/rasa test core --model models/current.tar.gz --stories tests/rasa \
  --fail-on-prediction-errors --out var/rasa-results --quiet || status=1

step "pytest"
.venv/bin/pytest -p no:cacheprovider "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests: that is a failure"
  status=1
elif [ $rc -ne 0 ]; then
  status=1
fi

echo
if [ $status -eq 0 ]; then echo "make test: all green"; else echo "make test: FAILED"; fi
exit $status
