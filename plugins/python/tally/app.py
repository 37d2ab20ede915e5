"""The `tally` Metrics Hub source plugin, in Python: daily users and events from a
paged API (see plugins/README.md, "Python"). Written by `metrics-hub plugin new` for this
example API; replace the request and the mapping with your API's:

    GET {base_url}/v1/days?from=YYYY-MM-DD&to=YYYY-MM-DD&page=N
    Authorization: Bearer {api_key}
    -> {"data": [{"date", "users", "events"}, ...], "next_page": N | null}

Built by plugins/build.sh with componentize-py against ../../../wit. The hub creates a new
`WitWorld` object for every call, so whatever must outlive a call (the settings) lives at
module level, never in `self`. Everything is imported at the top: only modules imported
when the component is built are in it. The HTTP goes through the host's `http.send`,
which checks `allowed_hosts`, paces and retries 429s for the plugin.
"""

import json
from typing import Dict, List
from urllib.parse import quote

import wit_world
from componentize_py_types import Err
from wit_world.imports import http, log
from wit_world.imports.http import Header, Request
from wit_world.imports.log import Level
from wit_world.imports.types import (
    ConfigEntry,
    DailyMetric,
    Metrics,
    QueryParams,
    SourceError_Auth,
    SourceError_InvalidConfig,
    SourceError_RateLimited,
    SourceError_Upstream,
    Summary,
)

from logic import Settings, add_page, next_page

# Module level: the hub calls `initialize` once per instance, then `fetch_metrics` many
# times, each on a fresh `WitWorld` object.
SETTINGS: Dict[str, Settings] = {}


class WitWorld(wit_world.WitWorld):
    def initialize(self, config: List[ConfigEntry]) -> None:
        try:
            SETTINGS["current"] = Settings.parse({e.key: e.value for e in config})
        except ValueError as err:
            raise Err(SourceError_InvalidConfig(str(err)))
        log.log(Level.INFO, "tally plugin ready", [])

    def fetch_metrics(self, params: QueryParams) -> Metrics:
        settings = SETTINGS["current"]
        totals = {"users": 0, "events": 0, "days": []}
        page = 1
        while page is not None:
            body = get(settings, params.start_date, params.end_date, page)
            try:
                add_page(totals, body)
                page = next_page(body)
            except (ValueError, KeyError, TypeError) as err:
                # Any other exception would trap the instance: say what was wrong instead.
                raise Err(SourceError_Upstream(f"page {page} is not what the plugin expects: {err!r}"))
        daily = [DailyMetric(date=d, users=u, events=e, extra=[]) for d, u, e in totals["days"]]
        summary = Summary(
            total_users=totals["users"],
            total_events=totals["events"],
            # This API has no page views or clients: absent (None), not zero.
            page_views=None,
            active_clients=None,
            extra=[],
        )
        return Metrics(summary=summary, daily=daily, features=None, clients=None)

    def health_check(self) -> None:
        settings = SETTINGS["current"]
        get(settings, "2024-01-01", "2024-01-01", 1)

    def cleanup(self) -> None:
        SETTINGS.clear()


def get(settings: Settings, start: str, end: str, page: int) -> dict:
    """One page of the API; errors as the contract's source errors."""
    url = f"{settings.base_url}/v1/days?from={quote(start)}&to={quote(end)}&page={page}"
    headers = [Header(name="authorization", value=f"Bearer {settings.api_key}")]
    try:
        response = http.send(Request(method="GET", url=url, headers=headers, body=None))
    except Err as err:
        raise Err(SourceError_Upstream(f"request failed: {err.value!r}"))
    if response.status == 401:
        raise Err(SourceError_Auth("the API refused the key"))
    if response.status == 429:
        raise Err(SourceError_RateLimited(None))
    if response.status != 200:
        raise Err(SourceError_Upstream(f"the API answered HTTP {response.status}"))
    try:
        return json.loads(response.body)
    except ValueError:
        raise Err(SourceError_Upstream("the API answered something that is not JSON"))
