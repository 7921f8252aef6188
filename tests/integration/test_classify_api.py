"""`POST /api/v1/classify`: the gateway proposes a category for a citizen's description."""

from __future__ import annotations


async def test_description_with_an_opener_gets_its_category(gateway) -> None:
    resp = await gateway.post(
        "/api/v1/classify", json={"text": "我要反映问题，小区门口路灯坏了，晚上很黑"}
    )
    assert resp.status == 200
    body = await resp.json()
    assert (body["category"], body["name"]) == ("urban", "城乡建设")
    assert 0.6 <= body["confidence"] <= 1
    assert len(body["alternatives"]) == 2
    assert all(a["confidence"] <= body["confidence"] for a in body["alternatives"])


async def test_missing_or_empty_text_is_refused(gateway) -> None:
    for payload in ({}, {"text": "   "}, {"text": 12}):
        resp = await gateway.post("/api/v1/classify", json=payload)
        assert resp.status == 400
        assert "text" in (await resp.json())["error"]
