"""Tests of bigquery_sql.py's rewrites on a tiny GA4 export (run by tests/tests/bigquery_sql.rs)."""

import json
import os
import tempfile
import unittest

import bigquery_sql as worker

PROJECT, DATASET = "standin-project", "analytics_1"


def row(table, user, name, url=None):
    params = [{"key": "ga_session_id", "value": {"string_value": None, "int_value": 7,
                                                 "float_value": None, "double_value": None}}]
    if url is not None:
        params.append({"key": "page_location", "value": {"string_value": url, "int_value": None,
                                                         "float_value": None, "double_value": None}})
    day = table[-8:]
    return {"_table": table, "event_date": day, "event_timestamp": 1, "event_name": name,
            "user_pseudo_id": user, "event_params": params}


ROWS = [
    row("events_20261129", "u1", "page_view", "https://acme.8020rei.com/home"),
    row("events_20261130", "u1", "page_view", "https://acme.8020rei.com/buybox"),
    row("events_20261130", "u2", "session_start"),
    row("events_intraday_20261130", "u2", "page_view", "https://summit.8020rei.com/home"),
    row("events_intraday_20261201", "u3", "page_view", "https://www.google.com/?q=https://x.8020rei.com"),
]


class WorkerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.export = worker.Export()
        with tempfile.NamedTemporaryFile("w", suffix=".ndjson", delete=False) as file:
            file.write("\n".join(json.dumps(r) for r in ROWS))
        cls.export.load({"path": file.name})
        os.unlink(file.name)

    def run_sql(self, sql, params=(), dry_run=False, default=True):
        request = {"sql": sql, "params": list(params), "project": PROJECT, "dataset": DATASET,
                   "location": "US", "today": "2026-12-01", "dry_run": dry_run,
                   "default_dataset": {"projectId": PROJECT, "datasetId": DATASET} if default else None}
        return worker.answer(self.export, {"op": "run", **request})

    def values(self, answer):
        self.assertTrue(answer["ok"], answer)
        return [[c["v"] for c in r["f"]] for r in answer["rows"]]

    def test_wildcard_tables_expose_the_suffix_and_prune_on_it(self):
        sql = (f"SELECT _TABLE_SUFFIX AS s, COUNT(*) AS n FROM `{PROJECT}.{DATASET}.events_*` "
               "WHERE _TABLE_SUFFIX BETWEEN @a AND @b GROUP BY s ORDER BY s")
        params = [{"name": "a", "type": "STRING", "value": "20261130"},
                  {"name": "b", "type": "STRING", "value": "20261130"}]
        answer = self.run_sql(sql, params)
        self.assertEqual(self.values(answer), [["20261130", "2"]])
        self.assertEqual(answer["tables"], ["events_20261130"])
        self.assertEqual(answer["schema"]["fields"][1]["type"], "INTEGER")

    def test_pruning_follows_or_and_constant_expressions_only(self):
        both = ("SELECT 1 FROM `events_*` WHERE (_TABLE_SUFFIX BETWEEN '20261130' AND '20261201' "
                "OR _TABLE_SUFFIX BETWEEN 'intraday_20261130' AND 'intraday_20261201') AND event_name = 'x'")
        self.assertEqual(self.run_sql(both, dry_run=True)["tables"],
                         ["events_20261130", "events_intraday_20261130", "events_intraday_20261201"])
        # The original dashboard's lower bound also matches every intraday table.
        original = ("SELECT 1 FROM `events_*` WHERE _TABLE_SUFFIX >= "
                    "FORMAT_DATE('%Y%m%d', DATE_SUB(CURRENT_DATE(), INTERVAL 1 DAY))")
        self.assertEqual(self.run_sql(original, dry_run=True)["tables"],
                         ["events_20261130", "events_intraday_20261130", "events_intraday_20261201"])
        # A condition that also reads a column prunes nothing, like no condition at all.
        mixed = "SELECT 1 FROM `events_*` WHERE _TABLE_SUFFIX = '20261129' OR event_name = 'x'"
        self.assertEqual(len(self.run_sql(mixed, dry_run=True)["tables"]), 4)

    def test_unnest_of_structs_exposes_their_fields(self):
        sql = ("SELECT (SELECT value.string_value FROM UNNEST(event_params) WHERE key = 'page_location') AS url "
               "FROM `events_20261130` ORDER BY url")
        self.assertEqual(self.values(self.run_sql(sql)), [[None], ["https://acme.8020rei.com/buybox"]])
        several = "SELECT (SELECT key FROM UNNEST(event_params)) FROM `events_20261129`"
        answer = self.run_sql(several)
        self.assertEqual(answer["reason"], "invalidQuery", answer)

    def test_regexp_extract_is_null_without_a_match(self):
        sql = ("SELECT REGEXP_EXTRACT(x, r'https://([^.]+)\\.8020rei\\.com') FROM "
               "UNNEST(['https://acme.8020rei.com/', 'https://8020rei.com/']) AS x")
        self.assertEqual(self.values(self.run_sql(sql)), [["acme"], [None]])

    def test_current_date_is_the_stand_ins_day(self):
        self.assertEqual(self.values(self.run_sql("SELECT CURRENT_DATE() AS d")), [["2026-12-01"]])

    def test_bad_sql_and_bad_names_are_bigquery_errors(self):
        self.assertEqual(self.run_sql("SELEC 1")["reason"], "invalidQuery")
        self.assertEqual(self.run_sql("SELECT nope(1)")["reason"], "invalidQuery")
        answer = self.run_sql("SELECT 1 FROM `events_20200101`")
        self.assertEqual((answer["status"], answer["reason"]), (404, "notFound"))
        answer = self.run_sql("SELECT 1 FROM `other-project.x.events_*`")
        self.assertEqual((answer["status"], answer["reason"]), (404, "notFound"))
        answer = self.run_sql("SELECT 1 FROM `events_*`", default=False)
        self.assertIn("missing dataset", answer["message"])
        qualified = self.run_sql(f"SELECT COUNT(*) FROM `{PROJECT}.{DATASET}.events_*`", default=False)
        self.assertEqual(self.values(qualified), [["5"]])

    def test_parameters_are_bound_with_their_types(self):
        dated = [{"name": "a", "type": "DATE", "value": "2026-11-30"}]
        answer = self.run_sql("SELECT COUNT(*) FROM `events_*` WHERE _TABLE_SUFFIX >= @a", dated)
        self.assertEqual(answer["reason"], "invalidQuery", answer)
        answer = self.run_sql("SELECT @a AS a", [{"name": "a", "type": "INT64", "value": "x"}])
        self.assertEqual(answer["reason"], "invalidQuery", answer)
        typed = self.run_sql("SELECT @a + 1 AS a, @b AS b",
                             [{"name": "a", "type": "INT64", "value": "41"},
                              {"name": "b", "type": "BOOL", "value": "true"}])
        self.assertEqual(self.values(typed), [["42", "true"]])
        self.assertEqual([f["type"] for f in typed["schema"]["fields"]], ["INTEGER", "BOOLEAN"])


if __name__ == "__main__":
    unittest.main()
