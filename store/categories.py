"""The work-order taxonomy as data: departments and a two-level category tree.

`store/data/categories.yml` is the source; `load_taxonomy()` validates it and `seed_taxonomy()`
upserts it into the `department` and `category` tables. Sub-categories inherit department,
response_days and result_days from their parent unless they set their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.errors import TaxonomyError
from store.models import Category, Department

DEFAULT_PATH = Path(__file__).parent / "data" / "categories.yml"
_INHERITED = ("department", "response_days", "result_days")


@dataclass(frozen=True)
class DepartmentInfo:
    """A department that handles work orders."""

    code: str
    name: str


@dataclass(frozen=True)
class CategoryNode:
    """One node of the taxonomy, with inheritance already resolved."""

    code: str
    name: str
    department: str
    response_days: int
    result_days: int
    parent: str | None = None
    children: tuple[str, ...] = ()

    @property
    def is_top_level(self) -> bool:
        """True for the nine top-level categories."""
        return self.parent is None


@dataclass
class Taxonomy:
    """Departments and categories with lookups by code and by name."""

    departments: dict[str, DepartmentInfo] = field(default_factory=dict)
    nodes: dict[str, CategoryNode] = field(default_factory=dict)

    def get(self, code: str) -> CategoryNode:
        """The category with this code; KeyError if unknown."""
        return self.nodes[code]

    def by_name(self, name: str) -> CategoryNode | None:
        """The category with this Chinese name (exact match after stripping), or None."""
        name = name.strip()
        for node in self.nodes.values():
            if node.name == name:
                return node
        return None

    def department_of(self, code: str) -> DepartmentInfo:
        """The department that handles a category by default."""
        return self.departments[self.nodes[code].department]

    def top_level(self) -> list[CategoryNode]:
        """Top-level categories in file order."""
        return [n for n in self.nodes.values() if n.parent is None]

    def children(self, code: str) -> list[CategoryNode]:
        """Direct sub-categories of a category."""
        return [self.nodes[c] for c in self.nodes[code].children]

    def top_of(self, code: str) -> CategoryNode:
        """The top-level ancestor of a category (itself if top-level)."""
        node = self.nodes[code]
        while node.parent is not None:
            node = self.nodes[node.parent]
        return node

    def __iter__(self) -> Iterator[CategoryNode]:
        return iter(self.nodes.values())


def _positive_int(raw: Any, what: str) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
        raise TaxonomyError(f"{what} must be a positive integer, got {raw!r}")
    return raw


def _parse_node(raw: dict[str, Any], parent: dict[str, Any] | None, tax: Taxonomy) -> CategoryNode:
    code, name = raw.get("code"), raw.get("name")
    if not isinstance(code, str) or not code.isascii() or not code:
        raise TaxonomyError(f"category code must be non-empty ascii: {code!r}")
    if not isinstance(name, str) or not name.strip():
        raise TaxonomyError(f"category {code} has no name")
    if code in tax.nodes:
        raise TaxonomyError(f"duplicate category code {code}")
    values = {k: raw.get(k, parent.get(k) if parent else None) for k in _INHERITED}
    dept = values["department"]
    if dept not in tax.departments:
        raise TaxonomyError(f"category {code}: unknown department {dept!r}")
    response = _positive_int(values["response_days"], f"{code}.response_days")
    result = _positive_int(values["result_days"], f"{code}.result_days")
    if result < response:
        raise TaxonomyError(f"category {code}: result_days < response_days")
    children = raw.get("children") or []
    if parent is not None and children:
        raise TaxonomyError(f"category {code}: only two levels are allowed")
    return CategoryNode(
        code=code,
        name=name.strip(),
        department=dept,
        response_days=response,
        result_days=result,
        parent=parent["code"] if parent else None,
        children=tuple(c.get("code") for c in children),
    )


def parse_taxonomy(data: dict[str, Any]) -> Taxonomy:
    """Validate already-loaded YAML data and build a Taxonomy."""
    if not isinstance(data, dict):
        raise TaxonomyError("taxonomy must be a mapping with departments and categories")
    tax = Taxonomy()
    for raw in data.get("departments") or []:
        code, name = raw.get("code"), raw.get("name")
        if not isinstance(code, str) or not code.isascii() or not name:
            raise TaxonomyError(f"bad department {raw!r}")
        if code in tax.departments:
            raise TaxonomyError(f"duplicate department code {code}")
        tax.departments[code] = DepartmentInfo(code=code, name=str(name))
    for raw in data.get("categories") or []:
        top = _parse_node(raw, None, tax)
        tax.nodes[top.code] = top
        for child in raw.get("children") or []:
            node = _parse_node(child, {**raw, **{k: getattr(top, k) for k in _INHERITED}}, tax)
            tax.nodes[node.code] = node
    if not tax.nodes:
        raise TaxonomyError("taxonomy has no categories")
    names = [n.name for n in tax.nodes.values()]
    if len(names) != len(set(names)):
        raise TaxonomyError("category names must be unique")
    return tax


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load and validate the taxonomy; the packaged file is read once and cached."""
    if path is None:
        return _default_taxonomy()
    with open(path, encoding="utf-8") as fh:
        return parse_taxonomy(yaml.safe_load(fh))


@lru_cache(maxsize=1)
def _default_taxonomy() -> Taxonomy:
    with open(DEFAULT_PATH, encoding="utf-8") as fh:
        return parse_taxonomy(yaml.safe_load(fh))


async def all_categories(session: AsyncSession) -> list[Category]:
    """Every category, by id (parents before their children as seeded)."""
    return list((await session.scalars(select(Category).order_by(Category.id))).all())


async def all_departments(session: AsyncSession) -> list[Department]:
    """Every department (承办单位), by id."""
    return list((await session.scalars(select(Department).order_by(Department.id))).all())


async def seed_taxonomy(
    session: AsyncSession, taxonomy: Taxonomy | str | Path | None = None
) -> None:
    """Insert or update Department and Category rows from the taxonomy (idempotent).

    `taxonomy` is a loaded Taxonomy, a YAML path, or None for the packaged file. Rows are
    matched by code; rows not in the taxonomy are left alone (work orders may point at them).
    The caller owns the transaction, e.g. `async with db.session() as s`.
    """
    tax = taxonomy if isinstance(taxonomy, Taxonomy) else load_taxonomy(taxonomy)
    depts = {d.code: d for d in (await session.scalars(select(Department))).all()}
    for info in tax.departments.values():
        row = depts.get(info.code)
        if row is None:
            row = depts[info.code] = Department(code=info.code, name=info.name)
            session.add(row)
        else:
            row.name = info.name
    await session.flush()

    cats = {c.code: c for c in (await session.scalars(select(Category))).all()}
    # Parents come before their children in `tax.nodes`, so parent ids exist when needed.
    for node in tax:
        cat = cats.get(node.code)
        if cat is None:
            cat = cats[node.code] = Category(code=node.code)
            session.add(cat)
        cat.name = node.name
        cat.department_id = depts[node.department].id
        cat.response_days = node.response_days
        cat.result_days = node.result_days
        cat.parent_id = cats[node.parent].id if node.parent else None
        if node.is_top_level:
            await session.flush()
    await session.flush()
