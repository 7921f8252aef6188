#!/usr/bin/env bash
# Train the Rasa model only when data/, domain.yml, config.yml (or custom NLU components)
# changed. Models are named by the hash of their inputs and cached outside the work tree, so
# a fresh clone on the same machine (CI) reuses a model trained before.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${HOTLINE_MODEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hotline12345/models}"
mkdir -p models "$CACHE"

inputs=(domain.yml config.yml data)
[ -d nlu_components ] && inputs+=(nlu_components)
# data/faq is the knowledge base: answers are chosen from it at run time (knowledge/), Rasa
# does not read it, so editing an entry must not retrain the model.
hash=$(find "${inputs[@]}" -type f ! -name '*.pyc' ! -path 'data/faq/*' -print0 | sort -z \
  | xargs -0 sha256sum | sha256sum | cut -c1-16)
model="models/${hash}.tar.gz"

if [ ! -f "$model" ] && [ -f "$CACHE/${hash}.tar.gz" ]; then
  cp "$CACHE/${hash}.tar.gz" "$model"
  [ -f "$CACHE/${hash}.train-seconds" ] && cp "$CACHE/${hash}.train-seconds" models/
fi
if [ ! -f "$model" ]; then
  echo "==> training Rasa model ${hash} (inputs changed)"
  start=$(date +%s)
  .venv-rasa/bin/rasa train --fixed-model-name "$hash" --out models --quiet
  seconds=$(( $(date +%s) - start ))
  echo "==> trained in ${seconds} s"
  echo "$seconds" > "models/${hash}.train-seconds"  # bench/nlu.py reports it
  cp "$model" "$CACHE/${hash}.tar.gz"
  cp "models/${hash}.train-seconds" "$CACHE/${hash}.train-seconds"
else
  echo "==> Rasa model ${hash} is up to date"
fi
ln -sfn "${hash}.tar.gz" models/current.tar.gz
