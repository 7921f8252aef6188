"""Rasa-SDK actions of the 12345 assistant: thin wrappers that parse the tracker and call the
store client (`store.client.StoreClient`) or the knowledge package (`knowledge`)."""

from store.client import warm_up_classifier
from store.masking import install_log_mask

# The action server imports this package at start-up: from here on every log record it writes
# has phone, ID-card and bank-card numbers masked (the same mask as the gateway and Rasa).
install_log_mask()
# Train the category classifier now, in the background, so the first citizen's form turn stays
# inside the gateway's reply budget.
warm_up_classifier()


def _warm_up_selector() -> None:
    """Build the knowledge index in the background (embeddings come from the disk cache after
    the first run), so the first question does not wait for it."""
    import threading

    from knowledge.selector import get_selector

    threading.Thread(target=get_selector, name="selector-warm-up", daemon=True).start()


_warm_up_selector()
