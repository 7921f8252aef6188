"""Place, name and mobile picked up from an appeal (store/intake.py). The texts here are not in
tests/appeals/dev.yml, which bench/appeals.py scores as a whole."""

from __future__ import annotations

import pytest

from store.intake import IntakeFields, extract_fields, extract_location, extract_name, extract_phone


def test_a_full_narrative_gives_all_three_fields() -> None:
    text = (
        "你好，我叫陈志明，住在江北区望江街道书香苑小区6栋2单元，我们单元的电梯上个月坏了"
        "到现在没修，我母亲八十多了下不了楼，麻烦尽快处理，我的手机是139 0011 2233。"
    )
    assert extract_fields(text) == IntakeFields(
        location="江北区望江街道书香苑小区6栋2单元", name="陈志明", phone="13900112233"
    )


def test_nothing_to_pick_up_gives_none() -> None:
    assert extract_fields("最近物价涨得太快了，工资不涨，日子越来越难过") == IntakeFields()


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("电话：+86 137-0000-1111", "13700001111"),
        ("手机１５８１２３４５６７８", "15812345678"),  # full-width digits
        ("回电请打幺三九零零零零一一一一", "13900001111"),  # read out by voice-to-text
        ("我的座机是0571-88886666，工号12345678901234", None),  # no mobile here
        ("身份证号110101199003071234", None),  # digits inside a longer number
    ],
)
def test_mobile_is_validated_like_the_form_does(text: str, phone: str | None) -> None:
    assert extract_phone(text) == phone


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("本人欧阳娜娜，在城东上班", "欧阳娜娜"),
        ("我是住在三号楼的业主，我姓钟，楼下天天吵", "钟"),
        ("联系人：贾先生 电话13312345678", "贾先生"),
        ("卢阿姨反映：小区里的路灯不亮", "卢阿姨"),
        ("老板姓吴，叫吴大军，欠我们工资", None),  # the other party, not the citizen
        ("王医生态度很差", None),
    ],
)
def test_only_the_citizen_s_own_name_is_taken(text: str, name: str | None) -> None:
    assert extract_name(text) == name


@pytest.mark.parametrize(
    ("text", "location"),
    [
        ("长安路与友谊路交叉口的红绿灯坏了", "长安路与友谊路交叉口"),
        ("我家在梨园新村12号楼，楼下有人烧垃圾", "梨园新村12号楼"),
        ("在汽车站坐车被多收了钱", "汽车站"),
        ("城关镇杏花村有个厂子晚上排污", "城关镇杏花村"),
        ("我们小区门口天天堵车", None),  # no name: a department cannot find it
        ("我在一家超市上班，老板不发工资", None),
    ],
)
def test_the_most_specific_place_is_taken(text: str, location: str | None) -> None:
    assert extract_location(text) == location


def test_traditional_characters_come_back_simplified() -> None:
    fields = extract_fields("我叫黃麗華，住在東風路18號，樓上漏水。電話13655557777")
    assert fields == IntakeFields(location="东风路18号", name="黄丽华", phone="13655557777")
