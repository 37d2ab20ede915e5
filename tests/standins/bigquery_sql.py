#!/usr/bin/env python3
"""Executes GoogleSQL for the BigQuery stand-in (tests/src/bigquery_standin.rs).

The stand-in keeps the wire format (legacy SQL refused, typed parameters, the cost
guard, paging, polling, error bodies) and hands each query to this worker, which it
starts once. The worker holds the GA4 export tables (`events_YYYYMMDD`,
`events_intraday_YYYYMMDD`, nested `event_params`) in DuckDB, translates the query with
sqlglot from BigQuery's dialect into DuckDB's, binds the typed query parameters as values
and runs it. Where the translation needs help it rewrites the parsed query narrowly:

- a table reference resolves as BigQuery would: `project.dataset.table`, or `table` in
  the request's default dataset; anything else is a BigQuery-shaped notFound;
- a wildcard table `events_*` becomes the union of the tables it matches, with
  `_TABLE_SUFFIX` as a column; the tables its `_TABLE_SUFFIX` conditions select (those
  in the WHERE of the same SELECT that read nothing but `_TABLE_SUFFIX` and constants,
  as BigQuery prunes) are reported, for the stand-in's bytes-billed estimate;
- `FROM UNNEST(array_of_structs)` without an alias exposes the struct's fields as
  columns in BigQuery, not in DuckDB: it becomes a subquery that expands them;
- `CURRENT_DATE()` is the stand-in's date, so a test and the stand-in agree on "today".

Protocol: one JSON object per line on stdin, one answer per line on stdout.
- `{"op": "load", "path": FILE}`: FILE holds one JSON row per line, each with `_table`
  (the table it belongs to) and the GA4 columns. Answers `{"ok": true, "tables": {...}}`.
- `{"op": "run", "sql", "params": [{"name", "type", "value"}], "default_dataset":
  {"projectId", "datasetId"} | null, "project", "dataset", "location", "today",
  "dry_run"}`: answers `{"ok": true, "schema", "rows", "tables"}` with the result in
  BigQuery's encoding (every scalar a string); a dry run computes no rows.
- any failure: `{"ok": false, "status", "code_name", "reason", "message"}`, e.g. 400
  invalidQuery for SQL that sqlglot or DuckDB rejects.
"""

import datetime
import decimal
import json
import sys

import duckdb
import sqlglot
from sqlglot import exp

ROWS = "__ga4_rows"
TABLES = "__ga4_tables"
SUFFIX = "_TABLE_SUFFIX"

# The GA4 export columns the stand-in's rows carry, in DuckDB's types.
GA4_COLUMNS = {
    "_table": "VARCHAR",
    "event_date": "VARCHAR",
    "event_timestamp": "BIGINT",
    "event_name": "VARCHAR",
    "user_pseudo_id": "VARCHAR",
    "event_params": "STRUCT(key VARCHAR, value STRUCT(string_value VARCHAR, "
    "int_value BIGINT, float_value DOUBLE, double_value DOUBLE))[]",
}


class QueryError(Exception):
    """A failure the stand-in answers in BigQuery's error envelope."""

    def __init__(self, status, code_name, reason, message):
        super().__init__(message)
        self.status, self.code_name, self.reason = status, code_name, reason


def invalid(message):
    return QueryError(400, "INVALID_ARGUMENT", "invalidQuery", message)


def not_found(message):
    return QueryError(404, "NOT_FOUND", "notFound", message)


def parse(sql):
    """The one GoogleSQL statement in `sql`, parsed; a syntax error is invalidQuery."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="bigquery") if s is not None]
    except sqlglot.errors.ParseError as err:
        first = err.errors[0]["description"] if err.errors else str(err)
        raise invalid(f"Syntax error: {first}") from None
    if len(statements) != 1:
        raise invalid("Syntax error: expected exactly one statement")
    return statements[0]


def parameter_value(param):
    """A typed query parameter as the Python value DuckDB binds with that type."""
    kind, text = param["type"], param.get("value")
    if text is None:
        return None
    try:
        if kind in ("INT64", "INTEGER"):
            return int(text)
        if kind in ("FLOAT64", "FLOAT"):
            return float(text)
        if kind in ("BOOL", "BOOLEAN"):
            return {"true": True, "false": False}[text.lower()]
        if kind in ("NUMERIC", "BIGNUMERIC"):
            return decimal.Decimal(text)
        if kind == "DATE":
            return datetime.date.fromisoformat(text)
        if kind == "TIMESTAMP":
            return datetime.datetime.fromisoformat(text)
        if kind == "STRING":
            return text
    except (ValueError, KeyError, decimal.InvalidOperation):
        pass
    raise invalid(f"Query parameter '{param['name']}': {text!r} is not a valid {kind}")


def rewrite_current_date(tree, today):
    """CURRENT_DATE() is the stand-in's day, not the machine's."""
    today_literal = exp.cast(exp.Literal.string(today), exp.DataType.build("DATE"))
    return tree.transform(
        lambda node: today_literal.copy() if isinstance(node, exp.CurrentDate) else node
    )


def rewrite_unnest(tree):
    """`FROM UNNEST(structs)` without an alias: the struct fields become the columns."""
    template = "SELECT __element.* FROM (SELECT UNNEST(__array) AS __element)"
    for unnest in list(tree.find_all(exp.Unnest)):
        if not isinstance(unnest.parent, (exp.From, exp.Join)) or unnest.args.get("alias"):
            continue
        if len(unnest.expressions) != 1 or unnest.args.get("offset"):
            continue
        expanded = sqlglot.parse_one(template, read="duckdb")
        array = unnest.expressions[0].copy()
        for column in expanded.find_all(exp.Column):
            if column.name == "__array":
                column.replace(array)
                break
        unnest.replace(expanded.subquery())
    return tree


def conjuncts(condition):
    """The operands of a chain of ANDs, parentheses looked through."""
    if isinstance(condition, exp.Paren):
        return conjuncts(condition.this)
    if isinstance(condition, exp.And):
        return conjuncts(condition.left) + conjuncts(condition.right)
    return [condition]


def reads_only_suffix(condition):
    """Whether a condition reads `_TABLE_SUFFIX` and nothing but constants besides."""
    if condition.find(exp.Select, exp.Subquery):
        return False
    columns = list(condition.find_all(exp.Column))
    return bool(columns) and all(c.name.upper() == SUFFIX for c in columns)


class Export:
    """The GA4 tables in DuckDB, and the queries run over them."""

    def __init__(self):
        self.db = duckdb.connect()
        self.tables = {}

    def load(self, request):
        columns = ", ".join(f"'{name}': '{kind}'" for name, kind in GA4_COLUMNS.items())
        self.db.execute(
            f"CREATE OR REPLACE TABLE {ROWS} AS SELECT * FROM read_json(?, "
            f"format = 'newline_delimited', columns = {{{columns}}})",
            [request["path"]],
        )
        counts = self.db.execute(
            f"SELECT _table, COUNT(*) FROM {ROWS} GROUP BY _table ORDER BY _table"
        ).fetchall()
        self.tables = {name: count for name, count in counts}
        self.db.execute(f"CREATE OR REPLACE TABLE {TABLES} (name VARCHAR)")
        for name in self.tables:
            self.db.execute(f"INSERT INTO {TABLES} VALUES (?)", [name])
            # Table names come from the stand-in's own rows (events_YYYYMMDD...), never
            # from a query, so quoting them into the view's text is safe.
            self.db.execute(
                f"CREATE OR REPLACE VIEW \"{name}\" AS "
                f"SELECT * EXCLUDE (_table) FROM {ROWS} WHERE _table = '{name}'"
            )
        return {"tables": self.tables}

    def resolve(self, table, request):
        """(project, dataset, name) of a table reference, as BigQuery resolves it."""
        name, dataset, project = table.name, table.args.get("db"), table.args.get("catalog")
        default = request.get("default_dataset") or {}
        if dataset is None:
            if not default.get("datasetId"):
                raise invalid(
                    f'Table name "{name}" missing dataset while no default dataset is set in the request.'
                )
            return default.get("projectId"), default["datasetId"], name
        project = project.name if project is not None else request["project"]
        return project, dataset.name, name

    def matching(self, prefix):
        return sorted(t for t in self.tables if t.startswith(prefix))

    def pruned(self, table, prefix, params):
        """The tables of a wildcard reference its `_TABLE_SUFFIX` conditions select."""
        candidates = self.matching(prefix)
        select = table.find_ancestor(exp.Select)
        where = select.args.get("where") if select is not None else None
        usable = [c for c in conjuncts(where.this) if reads_only_suffix(c)] if where else []
        if not usable:
            return candidates
        condition = exp.and_(*[c.copy() for c in usable])
        for column in condition.find_all(exp.Column):
            column.set("table", None)
        query = (
            f"SELECT name FROM (SELECT name, substr(name, {len(prefix) + 1}) AS {SUFFIX} "
            f"FROM {TABLES} WHERE starts_with(name, $__prefix)) WHERE {condition.sql(dialect='duckdb')}"
        )
        names = self.execute(query, {**self.used(condition, params), "__prefix": prefix})
        return sorted(row[0] for row in names.fetchall())

    def rewrite_tables(self, tree, request, params):
        """Resolves every table reference; returns the tables the query reads."""
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        read = set()
        for table in list(tree.find_all(exp.Table)):
            if not table.args.get("db") and table.name in ctes:
                continue
            project, dataset, name = self.resolve(table, request)
            if (project, dataset) != (request["project"], request["dataset"]):
                raise not_found(
                    f"Not found: Dataset {project}:{dataset} was not found in location {request['location']}"
                )
            alias = table.args.get("alias")
            if name.endswith("*"):
                prefix = name[:-1]
                if not self.matching(prefix):
                    raise not_found(f"Not found: Table {project}:{dataset}.{name} was not found in location {request['location']}")
                read.update(self.pruned(table, prefix, params))
                union = sqlglot.parse_one(
                    f"SELECT * EXCLUDE (_table), substr(_table, {len(prefix) + 1}) AS {SUFFIX} "
                    f"FROM {ROWS} WHERE starts_with(_table, '{prefix}')",
                    read="duckdb",
                )
                table.replace(exp.Subquery(this=union, alias=alias.copy() if alias else None))
            elif name in self.tables:
                read.add(name)
                table.replace(exp.Table(this=exp.to_identifier(name, quoted=True), alias=alias))
            else:
                raise not_found(
                    f"Not found: Table {project}:{dataset}.{name} was not found in location {request['location']}"
                )
        return sorted(read)

    @staticmethod
    def used(tree, params):
        """The parameters a (sub)tree names, by name; naming an absent one is invalidQuery."""
        used = {}
        for node in tree.find_all(exp.Parameter):
            name = node.name
            if name not in params:
                raise invalid(f"Query parameter '{name}' not found")
            used[name] = params[name]
        return used

    def execute(self, sql, params):
        try:
            return self.db.execute(sql, params)
        except duckdb.Error as err:
            raise invalid(str(err).strip().splitlines()[0]) from None

    def run(self, request):
        params = {p["name"]: parameter_value(p) for p in request.get("params", [])}
        tree = rewrite_current_date(parse(request["sql"]), request["today"])
        tables = self.rewrite_tables(tree, request, params)
        tree = rewrite_unnest(tree)
        try:
            sql = tree.sql(dialect="duckdb", unsupported_level=sqlglot.ErrorLevel.RAISE)
        except sqlglot.errors.UnsupportedError as err:
            raise invalid(f"Unsupported: {err}") from None
        bound = self.used(tree, params)
        if request.get("dry_run"):
            # Bound and planned, for the schema, but no row computed: a dry run.
            sql = f"SELECT * FROM ({sql}) AS __dry_run LIMIT 0"
        cursor = self.execute(sql, bound)
        rows = cursor.fetchall()
        fields = [field(name, kind) for name, kind, *_ in cursor.description]
        encoded = [{"f": [cell(v) for v in row]} for row in rows]
        return {"schema": {"fields": fields}, "rows": encoded, "tables": tables}


# DuckDB's type ids as BigQuery's schema types.
SCALAR_TYPES = {
    "bigint": "INTEGER", "integer": "INTEGER", "hugeint": "INTEGER", "smallint": "INTEGER",
    "tinyint": "INTEGER", "ubigint": "INTEGER", "uinteger": "INTEGER", "double": "FLOAT",
    "float": "FLOAT", "decimal": "NUMERIC", "varchar": "STRING", "boolean": "BOOLEAN",
    "date": "DATE", "timestamp": "DATETIME", "timestamp with time zone": "TIMESTAMP",
}


def field(name, kind):
    """A result column of DuckDB type `kind` in BigQuery's schema terms."""
    if kind.id == "list":
        return {**field(name, kind.children[0][1]), "mode": "REPEATED"}
    if kind.id == "struct":
        fields = [field(child, child_kind) for child, child_kind in kind.children]
        return {"name": name, "type": "RECORD", "mode": "NULLABLE", "fields": fields}
    return {"name": name, "type": SCALAR_TYPES.get(kind.id, "STRING"), "mode": "NULLABLE"}


def cell(value):
    """One cell in BigQuery's encoding: scalars as strings, RECORD and REPEATED nested."""
    if value is None:
        return {"v": None}
    if isinstance(value, bool):
        return {"v": "true" if value else "false"}
    if isinstance(value, list):
        return {"v": [cell(v) for v in value]}
    if isinstance(value, dict):
        return {"v": {"f": [cell(v) for v in value.values()]}}
    if isinstance(value, datetime.datetime):
        return {"v": repr(value.timestamp())}
    if isinstance(value, (datetime.date, decimal.Decimal)):
        return {"v": str(value)}
    return {"v": str(value)}


def answer(export, request):
    try:
        if request.get("op") == "load":
            return {"ok": True, **export.load(request)}
        if request.get("op") == "run":
            return {"ok": True, **export.run(request)}
        raise QueryError(400, "INVALID_ARGUMENT", "invalid", f"unknown op {request.get('op')!r}")
    except QueryError as err:
        return {"ok": False, "status": err.status, "code_name": err.code_name,
                "reason": err.reason, "message": str(err)}
    except Exception as err:  # the stand-in reports it; the worker keeps serving
        return {"ok": False, "status": 500, "code_name": "INTERNAL", "reason": "internalError",
                "message": f"{type(err).__name__}: {err}"}


def main():
    export = Export()
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(answer(export, json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
