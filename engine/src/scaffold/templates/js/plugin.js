// The `{{name}}` Metrics Hub source plugin, in JavaScript: daily users and events from a
// paged API (see plugins/README.md, "JavaScript"). Written by `metrics-hub plugin new` for
// this example API; replace the request and the mapping with your API's:
//
//   GET {base_url}/v1/days?from=YYYY-MM-DD&to=YYYY-MM-DD&page=N
//   Authorization: Bearer {api_key}
//   -> {"data": [{"date", "users", "events"}, ...], "next_page": N | null}
//
// Built by plugins/build.sh with componentize-js against ../../../wit. The web `fetch()`
// goes out through wasi:http, which the host routes through the same gate as the
// contract's `http.send`: `allowed_hosts`, pacing, retries of 429s, caps and deadline.
// Errors of an export are thrown as the contract's source-error (`{tag, val}`); s64
// fields are BigInts.

import { log } from 'metrics-hub:source/log@0.2.0';
import { addPage, nextPage, parseSettings } from './logic.js';

// The instance lives across calls: `initialize` runs once, then many `fetchMetrics`.
let settings;

export function initialize(entries) {
  try {
    settings = parseSettings(Object.fromEntries(entries.map(({ key, value }) => [key, value])));
  } catch (err) {
    throw { tag: 'invalid-config', val: err.message };
  }
  log('info', '{{name}} plugin ready', []);
}

export async function fetchMetrics(params) {
  const totals = { users: 0, events: 0, days: [] };
  let page = 1;
  while (page !== null) {
    const body = await get(params.startDate, params.endDate, page);
    addPage(totals, body);
    page = nextPage(body);
  }
  return {
    summary: {
      totalUsers: BigInt(totals.users),
      totalEvents: BigInt(totals.events),
      // This API has no page views or clients: absent (undefined), not zero.
      pageViews: undefined,
      activeClients: undefined,
      extra: [],
    },
    daily: totals.days.map(([date, users, events]) => ({
      date,
      users: BigInt(users),
      events: BigInt(events),
      extra: [],
    })),
    features: undefined,
    clients: undefined,
  };
}

export async function healthCheck() {
  await get('2024-01-01', '2024-01-01', 1);
}

export function cleanup() {
  settings = undefined;
}

// One page of the API; errors as the contract's source errors.
async function get(start, end, page) {
  const query = new URLSearchParams({ from: start, to: end, page: String(page) });
  let response;
  try {
    response = await fetch(`${settings.baseUrl}/v1/days?${query}`, {
      headers: { authorization: `Bearer ${settings.apiKey}` },
    });
  } catch (err) {
    // A refused host, a timeout or a transport failure.
    throw { tag: 'upstream', val: `request failed: ${err}` };
  }
  if (response.status === 401) throw { tag: 'auth', val: 'the API refused the key' };
  if (response.status === 429) throw { tag: 'rate-limited', val: undefined };
  if (response.status !== 200) throw { tag: 'upstream', val: `the API answered HTTP ${response.status}` };
  try {
    return await response.json();
  } catch {
    throw { tag: 'upstream', val: 'the API answered something that is not JSON' };
  }
}
