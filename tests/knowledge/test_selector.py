"""Answer selection: answer / clarify / none, expired entries, follow-ups, traditional input,
and the embedding cache. The questions below were written for these tests; the decision's
thresholds come from knowledge/calibration.json, fitted by bench/knowledge.py on the held-out
folds, never on these lines."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from knowledge.embed import Embedder
from knowledge.entries import KnowledgeBase
from knowledge.selector import Selector, get_selector
from tests.knowledge.conftest import SMALL_KB, write_kb

DAY = date(2026, 11, 26)
# a fresh machine embeds the whole knowledge base (~2,500 texts) for the first test
pytestmark = pytest.mark.timeout(1200)


@pytest.mark.parametrize(
    ("text", "entry_id"),
    [
        ("营业执照原件弄丢了，要怎么补办一个新的", "biz_license_replace"),
        ("社保卡密码忘记了被锁住了怎么解锁", "si_card_password"),
        ("公司成立一年了一直没业务没收入 这种也得按期报税吗", "biz_zero_declaration"),
    ],
)
def test_a_clear_question_is_answered_with_its_entry(
    real_selector: Selector, text: str, entry_id: str
) -> None:
    decision = real_selector.decide(text, today=DAY)
    assert decision.kind == "answer"
    assert decision.entry is not None and decision.entry.id == entry_id
    assert decision.candidates == (decision.candidates[0],)


def test_an_ambiguous_question_offers_at_most_three_candidates(real_selector: Selector) -> None:
    decision = real_selector.decide("公积金里的钱我想取出来用", today=DAY)
    assert decision.kind == "clarify"
    assert 2 <= len(decision.candidates) <= 3
    assert all(c.entry.id.startswith("hf_withdraw") for c in decision.candidates)
    scores = [c.score for c in decision.candidates]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    "text",
    [
        "兰州的公积金中心星期天开不开门",
        "我想问下出国旅游的护照去哪儿办",
        "疫情那时候的社保减免还能补申请吗",
    ],
)
def test_a_question_the_knowledge_base_does_not_cover_is_not_answered(
    real_selector: Selector, text: str
) -> None:
    assert real_selector.decide(text, today=DAY).kind != "answer"


def test_small_talk_is_told_no_entry_fits(real_selector: Selector) -> None:
    decision = real_selector.decide("今天天气真不错啊", today=DAY)
    assert decision.kind == "none"
    assert decision.candidates == ()


def test_traditional_characters_are_read_as_simplified(real_selector: Selector) -> None:
    traditional = real_selector.decide("營業執照原件弄丟了，要怎麼補辦一個新的", today=DAY)
    simplified = real_selector.decide("营业执照原件弄丢了，要怎么补办一个新的", today=DAY)
    assert traditional.query == simplified.query
    assert traditional.kind == simplified.kind == "answer"
    assert traditional.entry == simplified.entry


def test_an_elliptical_follow_up_is_read_with_the_previous_question(
    real_selector: Selector,
) -> None:
    after_medical = real_selector.decide("灵活就业的呢", previous="医保怎么交", today=DAY)
    after_pension = real_selector.decide("灵活就业的呢", previous="养老保险怎么交", today=DAY)
    assert after_medical.candidates[0].entry.id == "mi_flexible_employee"
    assert after_pension.candidates[0].entry.id == "si_flexible_employment"
    buy = real_selector.decide("那买房呢", previous="公积金怎么提取出来付房租", today=DAY)
    assert buy.candidates[0].entry.id == "hf_withdraw_purchase"


def test_rank_returns_k_servable_entries_best_first(real_selector: Selector) -> None:
    ranked = real_selector.rank("住院费用医保怎么报销", 5, today=DAY)
    assert len(ranked) == 5
    assert [c.score for c in ranked] == sorted((c.score for c in ranked), reverse=True)
    assert ranked[0].entry.id == "mi_reimbursement_process"


def test_an_expired_entry_is_never_answered_nor_offered(small_selector: Selector) -> None:
    question = "灵活就业人员社保缴费基数是多少？"
    before = small_selector.decide(question, today=date(2019, 6, 1))
    assert before.candidates and before.candidates[0].entry.id == "t_flexible"
    after = small_selector.decide(question, today=DAY)
    assert after.kind != "answer"
    assert "t_flexible" not in {c.entry.id for c in after.candidates}
    assert "t_flexible" not in {c.entry.id for c in small_selector.rank(question, 3, today=DAY)}


def test_a_changed_entry_re_embeds_only_its_own_texts(small_dir: Path, cache_dir: Path) -> None:
    first = Embedder(cache_dir)
    Selector(KnowledgeBase.load(small_dir), embedder=first)
    assert first.embedded == 6  # 2 questions + 3 examples + 1 not_for
    reloaded = Embedder(cache_dir)  # another process: vectors come from the disk cache
    Selector(KnowledgeBase.load(small_dir), embedder=reloaded)
    assert reloaded.embedded == 0

    data = yaml.safe_load(yaml.safe_dump(SMALL_KB))
    data["entries"][0]["question"] = "社保卡不见了怎么办理挂失？"
    data["entries"][0]["examples"].append("社保卡被偷了")
    write_kb(small_dir, data)
    changed = Embedder(cache_dir)
    selector = Selector(KnowledgeBase.load(small_dir), embedder=changed)
    assert changed.embedded == 2
    assert selector.rank("社保卡被偷了", 1, today=date(2019, 1, 1))[0].entry.id == "t_card_loss"


def test_get_selector_rebuilds_when_a_knowledge_base_file_changes(
    small_dir: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAQ_DIR", str(small_dir))
    monkeypatch.setenv("HOTLINE_E5_CACHE", str(cache_dir))
    first = get_selector()
    assert get_selector() is first
    data = yaml.safe_load(yaml.safe_dump(SMALL_KB))
    data["entries"].append(
        {
            "id": "t_card_apply",
            "subtopic": "社保卡",
            "question": "第一次怎么申领社保卡？",
            "answer": "到社保卡服务网点申领。",
            "review_by": "2099-12-31",
            "examples": ["从来没办过社保卡"],
        }
    )
    write_kb(small_dir, data)
    second = get_selector()
    assert second is not first
    assert second.kb.get("t_card_apply") is not None


def test_decision_features_see_whether_the_runner_up_is_of_the_same_subtopic(
    real_selector: Selector,
) -> None:
    # two withdrawal entries compete for a bare "公积金怎么提取": a near-duplicate runner-up
    generic = "公积金怎么提取"
    ranked = real_selector.ranked(generic)
    top, runner = (real_selector.index.entries[int(i)] for i in ranked.order[:2])
    features = real_selector.features(generic, ranked).as_dict()
    assert (top.topic_key, top.subtopic) == (runner.topic_key, runner.subtopic)
    assert features["runner_same_subtopic"] == 1.0
    assert features["runner_same_topic"] == 1.0


def test_decision_features_name_the_top_entrys_topic(real_selector: Selector) -> None:
    # one indicator per topic lets the calibration answer more readily where it is safer
    text = "社保卡密码忘记了被锁住了怎么解锁"
    features = real_selector.features(text, real_selector.ranked(text)).as_dict()
    topics = {k: v for k, v in features.items() if k.startswith("topic_") and k != "topic_mismatch"}
    assert topics["topic_social_insurance"] == 1.0
    assert sum(topics.values()) == 1.0


@pytest.mark.parametrize("text", ["公司要注销", "公积金贷款的事想问问"])
def test_a_short_message_naming_only_a_subject_is_asked_back(
    real_selector: Selector, text: str
) -> None:
    # several entries of the subject fit about equally: offer them instead of guessing one
    decision = real_selector.decide(text, today=DAY)
    assert decision.kind == "clarify"
    assert 2 <= len(decision.candidates) <= 3


def test_a_time_bound_measure_the_top_entry_never_mentions_is_a_decision_feature(
    real_selector: Selector,
) -> None:
    # "national rule vs a temporary measure": the entry on back payments says nothing of 疫情
    measure = "前几年疫情的时候社保费阶段性缓缴 那个政策现在还能办吗"
    standing = "社保断交了几个月能补缴吗"
    for text, expected in ((measure, 1.0), (standing, 0.0)):
        features = real_selector.features(text, real_selector.ranked(text)).as_dict()
        assert features["measure_missing"] == expected
