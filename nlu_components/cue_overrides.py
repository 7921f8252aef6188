"""A Rasa 3.6 NLU component that applies the cue rules of `nlu_components.cues` last.

It runs after DIET and the FallbackClassifier and, when a rule fires, puts the rule's intent
first with confidence 1.0 (the classifier's ranking follows). Nothing is trained.
"""

# Rasa 3.6 validates a graph component's signatures with typing.get_type_hints and typing_utils:
# keep typing.List / typing.Dict in them, as Rasa's own components do.
# ruff: noqa: UP006, UP035

from __future__ import annotations

from typing import Any, Dict, List

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from nlu_components.cues import cue_intent

RULE_CONFIDENCE = 1.0


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class CueOverrides(GraphComponent, IntentClassifier):
    """Impose the cue rules' intent on messages whose words leave no doubt."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """No options."""
        return {}

    def __init__(self, config: Dict[str, Any]) -> None:
        self.component_config = config

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> CueOverrides:
        """A new component (see GraphComponent)."""
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        """Put the cue rule's intent first where one fires."""
        for message in messages:
            intent = cue_intent(message.get(TEXT) or "")
            if intent is None:
                continue
            top = {"name": intent, "confidence": RULE_CONFIDENCE}
            ranking = [
                r for r in message.data.get(INTENT_RANKING_KEY) or [] if r.get("name") != intent
            ]
            message.data[INTENT] = top
            message.data[INTENT_RANKING_KEY] = [top, *ranking]
        return messages
