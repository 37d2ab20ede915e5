"""The plugin's logic without the WebAssembly bindings, so that plain `pytest` runs it:
settings checks and the page arithmetic."""

from dataclasses import dataclass
from typing import Dict, Optional


@dataclass
class Settings:
    base_url: str
    api_key: str

    @staticmethod
    def parse(config: Dict[str, str]) -> "Settings":
        base_url = config.get("base_url", "").strip().rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL, e.g. https://api.example.com")
        api_key = config.get("api_key", "").strip()
        if not api_key:
            raise ValueError("api_key is missing: set it to ${secret:{{env}}_API_KEY}")
        return Settings(base_url=base_url, api_key=api_key)


def add_page(totals: dict, body: dict) -> None:
    """Adds one page's days to the running totals."""
    for row in body.get("data", []):
        users, events = int(row["users"]), int(row["events"])
        if users < 0 or events < 0:
            raise ValueError(f"negative counts on {row['date']}")
        totals["users"] += users
        totals["events"] += events
        totals["days"].append((str(row["date"]), users, events))


def next_page(body: dict) -> Optional[int]:
    page = body.get("next_page")
    return int(page) if page is not None else None
