// `node --test plugins/{{dir}}`: the logic, natively, without building the component.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addPage, nextPage, parseSettings } from './logic.js';

test('settings need a URL and a key', () => {
  assert.deepEqual(parseSettings({ base_url: 'https://api.example.com/', api_key: 'k' }), {
    baseUrl: 'https://api.example.com',
    apiKey: 'k',
  });
  assert.throws(() => parseSettings({ base_url: 'api.example.com', api_key: 'k' }), /base_url/);
  assert.throws(() => parseSettings({ base_url: 'https://api.example.com' }), /api_key/);
});

test('pages add up and end', () => {
  const totals = { users: 0, events: 0, days: [] };
  addPage(totals, { data: [{ date: '2026-01-01', users: 2, events: 5 }], next_page: 2 });
  addPage(totals, { data: [{ date: '2026-01-02', users: 3, events: 1 }], next_page: null });
  assert.equal(totals.users, 5);
  assert.equal(totals.events, 6);
  assert.deepEqual(totals.days, [['2026-01-01', 2, 5], ['2026-01-02', 3, 1]]);
  assert.equal(nextPage({ next_page: 2 }), 2);
  assert.equal(nextPage({ next_page: null }), null);
});

test('negative counts are refused', () => {
  assert.throws(() => addPage({ users: 0, events: 0, days: [] }, { data: [{ date: 'd', users: -1, events: 0 }] }));
});
