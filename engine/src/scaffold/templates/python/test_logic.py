"""`pytest plugins/{{dir}}`: the logic, natively, without building the component."""

import pytest

from logic import Settings, add_page, next_page


def test_settings_need_a_url_and_a_key():
    settings = Settings.parse({"base_url": "https://api.example.com/", "api_key": "k"})
    assert settings.base_url == "https://api.example.com"
    with pytest.raises(ValueError, match="base_url"):
        Settings.parse({"base_url": "api.example.com", "api_key": "k"})
    with pytest.raises(ValueError, match="api_key"):
        Settings.parse({"base_url": "https://api.example.com"})


def test_pages_add_up_and_end():
    totals = {"users": 0, "events": 0, "days": []}
    add_page(totals, {"data": [{"date": "2026-01-01", "users": 2, "events": 5}], "next_page": 2})
    add_page(totals, {"data": [{"date": "2026-01-02", "users": 3, "events": 1}], "next_page": None})
    assert (totals["users"], totals["events"]) == (5, 6)
    assert totals["days"] == [("2026-01-01", 2, 5), ("2026-01-02", 3, 1)]
    assert next_page({"next_page": 2}) == 2 and next_page({"next_page": None}) is None


def test_negative_counts_are_refused():
    with pytest.raises(ValueError, match="negative"):
        add_page({"users": 0, "events": 0, "days": []}, {"data": [{"date": "d", "users": -1, "events": 0}]})
