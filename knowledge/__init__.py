"""The knowledge base and answer selection (imports neither bot, actions nor rasa).

- `knowledge.entries`: `FaqEntry`, `KnowledgeBase` (data/faq/*.yml), `get_knowledge()`;
- `knowledge.selector`: `Selector.decide()` → `Decision` (answer / clarify / none),
  `Selector.rank()`, `get_selector()`;
- `knowledge.followup`: `aspect()`, `answer_aspect()` for follow-ups about the last answer.
"""
