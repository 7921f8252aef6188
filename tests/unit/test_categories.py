"""The taxonomy file: shape, inheritance, lookups, validation and idempotent seeding."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from store.categories import (
    DEFAULT_PATH,
    TaxonomyError,
    load_taxonomy,
    parse_taxonomy,
    seed_taxonomy,
)
from store.db import Database
from store.models import Category, Department
from store.schema import create_all

TOP_LEVEL = {
    "labor": "劳动和社会保障",
    "urban": "城乡建设",
    "education": "教育文体",
    "health": "卫生计生",
    "transport": "交通运输",
    "commerce": "商贸旅游",
    "environment": "环境保护",
    "market": "市场监管与营商环境",
    "other": "其他",
}


def test_packaged_taxonomy_has_the_nine_top_level_categories() -> None:
    tax = load_taxonomy()
    assert {n.code: n.name for n in tax.top_level()} == TOP_LEVEL
    for top in tax.top_level():
        assert 3 <= len(tax.children(top.code)) <= 6
        for child in tax.children(top.code):
            assert child.parent == top.code
            assert tax.top_of(child.code) == top
            assert 1 <= child.response_days <= child.result_days
            assert child.department in tax.departments


def test_lookups_by_code_and_name_and_inheritance() -> None:
    tax = load_taxonomy()
    assert tax.by_name("物业管理").code == "urban.property"
    assert tax.by_name(" 城乡建设 ").code == "urban"
    assert tax.by_name("不存在的分类") is None
    assert tax.get("labor").name == "劳动和社会保障"
    assert tax.department_of("labor").name == "市人社局"
    # 欠薪 overrides the parent's result_days, inherits department and response_days.
    wages, labor = tax.get("labor.wages"), tax.get("labor")
    assert wages.result_days == 5 != labor.result_days
    assert (wages.department, wages.response_days) == (labor.department, labor.response_days)


def _data() -> dict:
    return {
        "departments": [{"code": "d1", "name": "部门一"}],
        "categories": [
            {
                "code": "a",
                "name": "甲",
                "department": "d1",
                "response_days": 1,
                "result_days": 5,
                "children": [{"code": "a.b", "name": "乙"}],
            }
        ],
    }


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d["categories"][0].update(department="nope"),
        lambda d: d["categories"][0].update(result_days=0),
        lambda d: d["categories"][0]["children"][0].update(response_days=9),  # > result_days
        lambda d: d["categories"][0]["children"][0].update(code="a"),  # duplicate
        lambda d: d["categories"][0]["children"][0].update(code="甲乙"),  # not ascii
        lambda d: d["departments"].append({"code": "d1", "name": "重复"}),
    ],
)
def test_invalid_taxonomy_is_rejected(breakage: Callable[[dict], None]) -> None:
    data = _data()
    assert parse_taxonomy(data).get("a.b").result_days == 5
    breakage(data)
    with pytest.raises(TaxonomyError):
        parse_taxonomy(data)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    # A file, not :memory: — with aiosqlite every pooled connection would get a fresh DB.
    db = Database(f"sqlite:///{tmp_path / 'taxonomy.db'}")
    await create_all(db)
    yield db
    await db.close()


async def _counts(db: Database) -> tuple[int, int]:
    async with db.session() as s:
        return (
            await s.scalar(select(func.count()).select_from(Department)),
            await s.scalar(select(func.count()).select_from(Category)),
        )


async def test_seeding_twice_creates_no_duplicates(database: Database) -> None:
    tax = load_taxonomy()
    async with database.session() as s:
        await seed_taxonomy(s)
    first = await _counts(database)
    assert first == (len(tax.departments), len(tax.nodes))
    async with database.session() as s:
        await seed_taxonomy(s)
    assert await _counts(database) == first

    async with database.session() as s:
        child = await s.scalar(select(Category).where(Category.code == "urban.illegal_building"))
        parent = await s.get(Category, child.parent_id)
        dept = await s.get(Department, child.department_id)
    assert parent.code == "urban"
    assert dept.name == tax.department_of("urban.illegal_building").name
    assert (child.response_days, child.result_days) == (1, 15)


def _changed_copy(tmp_path: Path) -> tuple[dict, Path]:
    raw = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    raw["categories"][0]["result_days"] = 20
    raw["departments"][0]["name"] = "12345政务服务便民热线中心"
    changed = tmp_path / "categories.yml"
    changed.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return raw, changed


async def test_seeding_updates_changed_rows(database: Database, tmp_path: Path) -> None:
    async with database.session() as s:
        await seed_taxonomy(s)
    raw, changed = _changed_copy(tmp_path)
    async with database.session() as s:
        await seed_taxonomy(s, changed)
    async with database.session() as s:
        labor = await s.scalar(select(Category).where(Category.code == "labor"))
        pension = await s.scalar(select(Category).where(Category.code == "labor.pension"))
        contract = await s.scalar(select(Category).where(Category.code == "labor.contract"))
        hotline = await s.scalar(select(Department).where(Department.code == "hotline"))
    assert labor.result_days == 20
    assert contract.result_days == 20  # inherits the parent's new value
    assert pension.result_days == 15  # keeps its own override
    assert hotline.name == "12345政务服务便民热线中心"
    assert await _counts(database) == (len(raw["departments"]), len(load_taxonomy().nodes))
