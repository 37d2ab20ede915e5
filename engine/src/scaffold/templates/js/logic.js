// The plugin's logic without the WebAssembly bindings, so that `node --test` runs it:
// settings checks and the page arithmetic.

export function parseSettings(config) {
  const baseUrl = (config.base_url ?? '').trim().replace(/\/+$/, '');
  if (!/^https?:\/\//.test(baseUrl)) {
    throw new Error('base_url must be an http(s) URL, e.g. https://api.example.com');
  }
  const apiKey = (config.api_key ?? '').trim();
  if (!apiKey) throw new Error('api_key is missing: set it to ${secret:{{env}}_API_KEY}');
  return { baseUrl, apiKey };
}

export function addPage(totals, body) {
  for (const row of body.data ?? []) {
    const users = Number(row.users);
    const events = Number(row.events);
    if (!Number.isInteger(users) || !Number.isInteger(events) || users < 0 || events < 0) {
      throw { tag: 'upstream', val: `bad counts on ${row.date}` };
    }
    totals.users += users;
    totals.events += events;
    totals.days.push([String(row.date), users, events]);
  }
}

export function nextPage(body) {
  return body.next_page == null ? null : Number(body.next_page);
}
