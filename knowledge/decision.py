"""The answer / clarify / none decision over features of a ranking.

Two logistic models over the same features, fitted on held-out folds by
`bench/knowledge.py --fit` and stored in `knowledge/calibration.json`:
- `p_right`: probability that the top candidate is the right answer (trained on held-out
  in-knowledge-base questions, plus out-of-KB questions, where the top is always wrong);
- `p_known`: probability that some entry answers the question (in-KB vs out-of-KB).
Answer when `p_right >= answer_threshold` and the top candidate is at least `min_margin`
ahead of the runner-up; say that no entry fits when
`p_known < none_threshold`; otherwise ask back with candidates. Without a calibration file a
plain rule on the top score and the margin is used.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration.json"

# Provinces and large cities: a question naming one usually asks for that place's own measure.
_PLACES = re.compile(
    "北京|天津|上海|重庆|河北|山西|辽宁|吉林|黑龙江|江苏|浙江|安徽|福建|江西|山东|河南|湖北|湖南|"
    "广东|海南|四川|贵州|云南|陕西|甘肃|青海|台湾|内蒙古|广西|西藏|宁夏|新疆|香港|澳门|深圳|广州|"
    "杭州|南京|苏州|成都|武汉|西安|郑州|长沙|青岛|厦门|宁波|东莞|佛山|合肥|济南|沈阳|大连|哈尔滨|"
    "长春|昆明|南宁|贵阳|南昌|福州|太原|石家庄|兰州|乌鲁木齐|呼和浩特|银川|西宁|拉萨|海口|三亚|"
    "无锡|常州|温州|珠海|中山|惠州|烟台|潍坊|徐州|泉州|洛阳|唐山|保定"
)

FEATURE_NAMES = (
    "top",
    "margin",
    "dense_top",
    "dense_margin",
    "lexical_top",
    "lexical_agrees",
    "coverage",
    "negative_excess",
    "names_place",
    "log_length",
    "centroid_top",
    "centroid_margin",
    "best_text_agrees",
    "topic_mismatch",
    "neighbour_share",
    "nearest_agrees",
    "runner_same_subtopic",
    "runner_same_topic",
    "all_agree",
    "lexical_rank",
    # the top's topic (one indicator each): a per-topic shift of the answer threshold
    "topic_business",
    "topic_hotline",
    "topic_housing_fund",
    "topic_medical_insurance",
    "topic_social_insurance",
    "measure_missing",
)
TOPIC_KEYS = ("business", "hotline", "housing_fund", "medical_insurance", "social_insurance")


@dataclass(frozen=True)
class Features:
    """Decision features of one ranked query."""

    values: tuple[float, ...]

    @classmethod
    def of(
        cls,
        norm_text: str,
        order: np.ndarray,
        fused: np.ndarray,
        scores: Any,
        groups: Sequence[tuple[str, str]] | None = None,
    ) -> Features:
        """Features of the top candidate of a ranking (see FEATURE_NAMES); `groups` are the
        entries' (topic, subtopic) pairs, aligned with the scores."""
        i1 = int(order[0])
        i2 = int(order[1]) if len(order) > 1 else i1
        s1 = float(fused[i1])
        s2 = float(fused[int(order[1])]) if len(order) > 1 else 0.0
        dense = scores.dense_max
        d1 = float(dense[i1])
        d_other = float(np.max(np.delete(dense, i1))) if len(dense) > 1 else 0.0
        lex = scores.lexical
        centroid = scores.dense_centroid
        c1 = float(centroid[i1])
        c_other = float(np.max(np.delete(centroid, i1))) if len(centroid) > 1 else 0.0
        near = scores.neighbours if scores.neighbours is not None else np.zeros(0)
        values = (
            s1,
            s1 - s2,
            d1,
            d1 - d_other,
            float(lex[i1]),
            1.0 if int(np.argmax(lex)) == i1 else 0.0,
            float(scores.coverage[i1]),
            max(0.0, float(scores.negative[i1]) - d1 + 0.05),
            1.0 if _PLACES.search(norm_text) else 0.0,
            math.log1p(len(norm_text)),
            c1,
            c1 - c_other,
            1.0 if int(np.argmax(dense)) == i1 else 0.0,
            float(scores.topic_mismatch[i1]) if scores.topic_mismatch is not None else 0.0,
            float(np.mean(near == i1)) if len(near) else 0.0,
            1.0 if len(near) and int(near[0]) == i1 else 0.0,
            # a runner-up of the same subtopic is a near-duplicate: ask back; one of another
            # topic is a lexical accident
            1.0 if groups and i2 != i1 and groups[i2] == groups[i1] else 0.0,
            1.0 if groups and i2 != i1 and groups[i2][0] == groups[i1][0] else 0.0,
            1.0
            if int(np.argmax(dense)) == i1
            and int(np.argmax(centroid)) == i1
            and int(np.argmax(lex)) == i1
            else 0.0,
            math.log1p(float(np.sum(lex > lex[i1]))),
            *(1.0 if groups and groups[i1][0] == key else 0.0 for key in TOPIC_KEYS),
            float(scores.measure_missing[i1]) if scores.measure_missing is not None else 0.0,
        )
        return cls(values)

    def as_dict(self) -> dict[str, float]:
        """Named features (for reports)."""
        return dict(zip(FEATURE_NAMES, self.values, strict=True))


@dataclass(frozen=True)
class Logistic:
    """A fitted logistic model over standardised features."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def prob(self, x: tuple[float, ...]) -> float:
        """P(positive | x)."""
        z = self.intercept + sum(
            c * (v - m) / s for c, v, m, s in zip(self.coef, x, self.mean, self.scale, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@dataclass(frozen=True)
class DecisionModel:
    """Answer / clarify / none from ranking features."""

    p_right: Logistic | None = None
    p_known: Logistic | None = None
    answer_threshold: float = 0.5
    none_threshold: float = 0.5
    # Never answer when the runner-up is this close (fused score): short generic questions
    # ("公积金怎么提取") score high on several entries and the held-out examples, each written
    # for one entry, hardly contain them. Fixed by design, not fitted; its cost is measured.
    min_margin: float = 0.01
    # a short message ("公司要注销", "医保缴费问题") names a subject, rarely which of its entries:
    # up to `short_length` characters the runner-up must be `short_min_margin` behind. Fixed by
    # design like min_margin (the held-out examples hardly contain such lines); cost measured.
    short_length: int = 10
    short_min_margin: float = 0.015
    # rule used without a calibration file: fused top score and margin
    rule_answer_top: float = 0.84
    rule_answer_margin: float = 0.03
    rule_none_top: float = 0.78

    def margin_ok(self, features: Features) -> bool:
        """Whether the top is far enough ahead of the runner-up to be answered at all."""
        x = features.values
        short = x[9] <= math.log1p(self.short_length)  # log_length
        floor = max(self.min_margin, self.short_min_margin) if short else self.min_margin
        return x[1] >= floor

    def decide(self, features: Features) -> tuple[Literal["answer", "clarify", "none"], float]:
        """The decision and the probability that the top candidate is right."""
        x = features.values
        if self.p_right is None or self.p_known is None:
            top, margin = x[0], x[1]
            if top >= self.rule_answer_top and margin >= self.rule_answer_margin:
                return "answer", top
            if top < self.rule_none_top:
                return "none", top
            return "clarify", top
        p = self.p_right.prob(x)
        if p >= self.answer_threshold and self.margin_ok(features):
            return "answer", p
        if self.p_known.prob(x) < self.none_threshold:
            return "none", p
        return "clarify", p

    def to_json(self) -> str:
        """The model as JSON (knowledge/calibration.json)."""
        return json.dumps(
            {"features": list(FEATURE_NAMES), **asdict(self)}, ensure_ascii=False, indent=1
        )

    @classmethod
    def from_dict(cls, data: dict) -> DecisionModel:
        """The model from its JSON mapping."""
        logistic = {
            k: Logistic(**{f: tuple(v) if isinstance(v, list) else v for f, v in data[k].items()})
            for k in ("p_right", "p_known")
            if data.get(k)
        }
        rest = {k: v for k, v in data.items() if k not in ("p_right", "p_known", "features")}
        return cls(**logistic, **rest)


def load_decision_model(path: Path = CALIBRATION_FILE) -> DecisionModel:
    """The calibrated model, or the plain rule when the file is missing or for other features."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DecisionModel()
    if tuple(data.get("features") or ()) != FEATURE_NAMES:
        return DecisionModel()
    return DecisionModel.from_dict(data)
