// The dashboard at `/`. The view (window, sources, comparison) lives in the URL, with the
// API's own parameter names, so a view can be shared and the back button works; every
// number on the page comes from /api/metrics for exactly that view. The ids and data-*
// attributes the browser tests read are listed in docs/pages.md.
"use strict";

(() => {
  const { el, requestJson, errorMessage, formatCount, ago, localTime, sourceLabel } = window.MetricsHub;
  const $ = (selector) => document.querySelector(selector);

  const PRESETS = ["7", "30", "90"];
  const METRICS = ["total_users", "total_events", "page_views", "active_clients"];
  const PALETTE = ["#1f4fd1", "#e0731f", "#178a5a", "#b8326b", "#6c4bc1", "#8a7a12", "#1b8aa3", "#5c5c5c"];
  const STATUS_TEXT = { error: "failed", timeout: "timed out", skipped: "left out" };

  const main = $("#dashboard");
  let sources = []; // enabled sources, from /api/sources
  let charts = { daily: null, features: null };
  let clients = [];
  let anomalies = [];
  let forecasts = [];
  let correlations = [];
  let sort = { field: "events", descending: true };
  let generation = 0; // a newer load makes the answers of older ones stale

  // ---- state <-> URL -------------------------------------------------------------------

  function readState() {
    const query = new URLSearchParams(location.search);
    const start = query.get("start_date");
    const end = query.get("end_date");
    const custom = Boolean(start && end);
    return {
      days: custom ? null : (query.get("days") || "30").trim(),
      start: custom ? start : null,
      end: custom ? end : null,
      sources: (query.get("source") || "").split(",").map((id) => id.trim()).filter(Boolean),
      compare: query.get("compare") === "1",
      metric: query.get("metric") === "events" ? "events" : "users",
    };
  }

  /** The /api/metrics query string of a state, restricted to `ids` (all when empty). */
  function metricsQuery(state, ids) {
    const parts = state.start
      ? [`start_date=${encodeURIComponent(state.start)}`, `end_date=${encodeURIComponent(state.end)}`]
      : [`days=${encodeURIComponent(state.days)}`];
    if (ids.length) parts.push(`source=${ids.map(encodeURIComponent).join(",")}`);
    return parts.join("&");
  }

  function pageQuery(state) {
    let query = metricsQuery(state, state.sources);
    if (state.compare) query += `&compare=1&metric=${state.metric}`;
    return query;
  }

  function navigate(change) {
    const state = { ...readState(), ...change };
    history.pushState(null, "", `${location.pathname}?${pageQuery(state)}`);
    load();
  }

  // ---- controls ------------------------------------------------------------------------

  function buildSourceOptions() {
    const holder = $("#source-options");
    holder.replaceChildren(
      ...sources.map((source) =>
        el("label", { class: "check", title: source.name },
          el("input", { type: "checkbox", class: "source-option", value: source.id }),
          " ", sourceLabel(source)),
      ),
    );
  }

  function syncControls(state) {
    const range = $("#range");
    if (state.start) {
      range.value = "custom";
    } else {
      // A shared link may carry any whole number of days: offer it as a choice of its own.
      const other = /^[0-9]+$/.test(state.days) && !PRESETS.includes(state.days);
      if (other && !range.querySelector(`option[value="${CSS.escape(state.days)}"]`)) {
        range.insertBefore(el("option", { value: state.days }, `Last ${state.days} days`), range.lastElementChild);
      }
      range.value = state.days;
    }
    $("#custom-range").hidden = range.value !== "custom";
    if (state.start) {
      $("#start-date").value = state.start;
      $("#end-date").value = state.end;
    }
    $("#source-all").checked = state.sources.length === 0;
    for (const box of document.querySelectorAll(".source-option")) {
      box.checked = state.sources.includes(box.value);
    }
    $("#compare").checked = state.compare;
    $("#compare-metric").hidden = !state.compare;
    $("#compare-metric").value = state.metric;
  }

  function wireControls() {
    $("#range").addEventListener("change", (event) => {
      const value = event.target.value;
      if (value === "custom") {
        // Start from the window on screen; the view changes when Apply is pressed.
        $("#custom-range").hidden = false;
        const shown = main.dataset.window ? JSON.parse(main.dataset.window) : null;
        if (shown) {
          $("#start-date").value ||= shown.startDate;
          $("#end-date").value ||= shown.endDate;
        }
        return;
      }
      navigate({ days: value, start: null, end: null });
    });
    $("#controls").addEventListener("submit", (event) => {
      // Enter in any control submits the form; only the custom range has something to apply.
      event.preventDefault();
      if ($("#range").value !== "custom") return;
      const start = $("#start-date").value;
      const end = $("#end-date").value;
      if (!start || !end) {
        showError("Choose both a start and an end date.");
        return;
      }
      if (start > end) {
        showError("The start date must not be after the end date.");
        return;
      }
      navigate({ days: null, start, end });
    });
    $("#source-all").addEventListener("change", (event) => {
      // "All" cannot be unticked on its own: pick a source instead.
      event.target.checked = true;
      navigate({ sources: [] });
    });
    $("#source-options").addEventListener("change", () => {
      const ids = [...document.querySelectorAll(".source-option:checked")].map((box) => box.value);
      navigate({ sources: ids });
    });
    $("#compare").addEventListener("change", (event) => navigate({ compare: event.target.checked }));
    $("#compare-metric").addEventListener("change", (event) => navigate({ metric: event.target.value }));
    $("#refresh").addEventListener("click", () => load());
    for (const button of document.querySelectorAll("#clients button[data-sort]")) {
      button.addEventListener("click", () => {
        const field = button.dataset.sort;
        sort = sort.field === field
          ? { field, descending: !sort.descending }
          : { field, descending: field !== "client" };
        renderClients();
      });
    }
    window.addEventListener("popstate", () => load());
  }

  // ---- loading -------------------------------------------------------------------------

  async function load() {
    const mine = ++generation;
    const state = readState();
    syncControls(state);
    main.dataset.status = "loading";
    main.setAttribute("aria-busy", "true");
    $("#updated").textContent = "Loading…";

    const query = metricsQuery(state, state.sources);
    const answer = await requestJson(`/api/metrics?${query}`);
    // Comparison asks each source that answered on its own (from its cache, just filled);
    // a source that failed is already a warning and has no series to draw.
    const details = (answer.body && answer.body.metadata && answer.body.metadata.sourceDetails) || [];
    const compared = state.compare && answer.ok ? details.filter((d) => d.status === "ok").map((d) => d.id) : [];
    const perSource = await Promise.all(
      compared.map((id) => requestJson(`/api/metrics?${metricsQuery(state, [id])}`)),
    );
    // The unusual days, the next two weeks and the related series, from the same caches;
    // none when one fails.
    const asked = !state.compare && answer.ok;
    const insights = await Promise.all(["anomalies", "forecast", "correlations"].map((kind) =>
      asked ? requestJson(`/api/insights/${kind}?${query}`) : null));
    if (mine !== generation) return;

    const [unusual, ahead, related] = insights.map((r) => (r && r.ok ? r.body.data : null));
    anomalies = unusual ? unusual.series : [];
    forecasts = ahead ? ahead.series : [];
    correlations = related ? related.pairs : [];
    render(state, answer, compared.map((id, i) => ({ id, answer: perSource[i], detail: details.find((d) => d.id === id) })));
    main.dataset.request = query;
    main.dataset.status = answer.ok ? "ready" : "error";
    main.removeAttribute("aria-busy");
  }

  function showError(message) {
    const banner = $("#error");
    banner.textContent = message;
    banner.hidden = !message;
  }

  function render(state, answer, compared) {
    const body = answer.body || {};
    const metadata = body.metadata || {};
    const details = metadata.sourceDetails || [];
    showError(answer.ok ? "" : errorMessage(answer));
    renderWarnings(details, compared.filter((c) => !c.answer.ok));
    renderStatus(details);
    if (metadata.window) main.dataset.window = JSON.stringify(metadata.window);

    const data = answer.ok ? body.data : null;
    renderCards(data ? data.summary : {}, details);
    renderDerived(data ? data.derived || [] : []);
    renderDaily(state, data, compared);
    renderCorrelations();
    renderFeatures(data ? data.featureMetrics : []);
    clients = data ? data.clientMetrics : [];
    renderClients();

    if (answer.ok) {
      const shown = metadata.window;
      const span = shown ? `${shown.startDate} to ${shown.endDate}` : "";
      $("#updated").textContent =
        `${span} · updated ${new Date(metadata.timestamp).toLocaleTimeString()}` +
        (metadata.cached ? " (from the hub's cache)" : "");
    } else {
      $("#updated").textContent = "";
    }
  }

  // ---- pieces --------------------------------------------------------------------------

  function renderWarnings(details, comparedFailures) {
    const failed = details.filter((d) => d.status !== "ok");
    $("#warnings").replaceChildren(
      ...comparedFailures.map((c) =>
        el("div", { class: "banner warning", "data-source": c.id },
          el("strong", {}, `${c.detail ? c.detail.name : c.id} has no line in the comparison: `),
          errorMessage(c.answer))),
      ...failed.map((d) => {
        const error = d.error || {};
        const what = d.status === "skipped" ? "is left out of this view" : `${STATUS_TEXT[d.status] || "failed"}`;
        return el("div", { class: "banner warning", "data-source": d.id },
          el("strong", {}, `${d.name} ${what}: `),
          error.message || "no reason given",
          error.code ? el("code", {}, ` ${error.code}`) : null,
          el("span", { class: "muted" }, " — the figures below come from the other sources."));
      }),
    );
  }

  function renderStatus(details) {
    $("#source-status").replaceChildren(
      ...details.map((d) => {
        let text;
        if (d.status === "ok" && d.stale) {
          // Expired data served instead of an empty panel: say since when, and why.
          const why = d.error ? ` (${d.error.message || d.error.code})` : " · refreshing";
          text = `stale since ${localTime(d.fetchedAt)}${why}`;
        } else if (d.status === "ok") {
          text = `updated ${ago(d.fetchedAt)}${d.cached ? " · cached" : ""}`;
        } else {
          text = STATUS_TEXT[d.status] || d.status;
        }
        return el("li", { "data-source": d.id, "data-status": d.status, "data-stale": d.stale ? "true" : null, title: d.fetchedAt ? `Fetched ${localTime(d.fetchedAt)}` : null },
          el("span", { class: `dot ${d.status}`, "aria-hidden": "true" }),
          sourceLabel(d), " · ",
          d.stale ? el("span", { class: "stale-badge", "data-stale-since": d.fetchedAt }, "stale") : null,
          d.stale ? " " : null,
          el("span", { class: "muted" }, text));
      }),
    );
  }

  function renderCards(summary, details) {
    for (const metric of METRICS) {
      const card = document.querySelector(`[data-metric="${metric}"]`);
      const from = details.filter((d) => d.status === "ok" && (d.summaryFields || []).includes(metric));
      // The API writes 0 for a field no source supplied; on a card that would read as a
      // measured zero, so it shows a dash and says why.
      const value = summary && from.length ? summary[metric] : undefined;
      const holder = card.querySelector(".value");
      holder.dataset.value = typeof value === "number" ? String(value) : "";
      holder.textContent = formatCount(value);
      card.querySelector(".badges").replaceChildren(
        ...(from.length
          ? from.map((d) => el("span", {
            class: d.stale ? "badge stale" : "badge",
            "data-source": d.id,
            "data-stale": d.stale ? "true" : null,
            title: d.stale ? `${d.name} · stale since ${localTime(d.fetchedAt)}` : `${d.name} · updated ${ago(d.fetchedAt)}`,
          }, d.stale ? `${d.badge} · stale since ${localTime(d.fetchedAt)}` : d.badge))
          : [el("span", { class: "muted" }, details.some((d) => d.status === "ok") ? "no source provides this" : "")]),
      );
    }
  }

  const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
  const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

  /** A derived value as its format says: a fraction as a percentage, a count whole. */
  function formatDerived(metric, value) {
    if (typeof value !== "number") return "–";
    if (metric.format === "percent") return percent.format(value);
    if (metric.format === "count") return formatCount(Math.round(value));
    return decimal.format(value);
  }

  /** One card per derived metric (`data.derived`), and their daily lines on one chart. */
  function renderDerived(metrics) {
    $("#derived-section").hidden = metrics.length === 0;
    $("#derived-cards").replaceChildren(
      ...metrics.map((m) => el("article", { class: "card", "data-derived": m.name, title: `${m.description || m.label}\nFrom ${m.inputs.join(", ")}` },
        el("h3", {}, m.label),
        el("p", { class: "value", "data-value": typeof m.value === "number" ? String(m.value) : "" }, formatDerived(m, m.value),
          m.unit && typeof m.value === "number" ? el("span", { class: "unit" }, ` ${m.unit}`) : null),
        el("p", { class: "badges muted" }, m.missing.length ? `no data for ${m.missing.join(", ")}` : m.inputs.map((i) => i.split(".")[0]).filter((v, i, all) => all.indexOf(v) === i).join(" · ")))),
    );
    const lines = metrics.filter((m) => m.daily.length);
    $("#derived-daily-panel").hidden = lines.length === 0;
    if (!lines.length) return;
    const dates = [...new Set(lines.flatMap((m) => m.daily.map((d) => d.date)))].sort();
    const canvas = $("#derived-chart");
    canvas.setAttribute("aria-label", `Derived metrics per day: ${lines.map((m) => m.label).join(", ")}`);
    chart("derived", canvas, {
      type: "line",
      data: {
        labels: dates,
        datasets: lines.map((m, i) => {
          const byDate = new Map(m.daily.map((d) => [d.date, d.value]));
          const color = PALETTE[(i + 2) % PALETTE.length];
          return { label: m.label, data: dates.map((d) => byDate.get(d) ?? null), borderColor: color, backgroundColor: color, tension: 0.2, pointRadius: 0 };
        }),
      },
      options: { ...BASE_OPTIONS, scales: { x: DAY_AXIS, y: { beginAtZero: true } } },
    });
  }

  function chart(name, canvas, config) {
    if (charts[name]) charts[name].destroy();
    charts[name] = new Chart(canvas, config);
    canvas.dataset.series = config.data.datasets.map((d) => d.label).join("|");
  }

  const dayFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
  /** An x axis of YYYY-MM-DD labels, shown as "Nov 25"; tooltips keep the full date. */
  const DAY_AXIS = {
    ticks: {
      maxRotation: 0,
      autoSkipPadding: 12,
      callback(value) {
        const label = this.getLabelForValue(value);
        return dayFormat.format(new Date(`${label}T00:00:00Z`));
      },
    },
  };

  const BASE_OPTIONS = {
    animation: false,
    maintainAspectRatio: false,
    interaction: { mode: "index", intersect: false },
    plugins: { legend: { position: "bottom" } },
  };

  function renderDaily(state, data, compared) {
    const canvas = $("#daily-chart");
    if (state.compare) {
      const answered = compared.filter((c) => c.answer.ok);
      const dates = [...new Set(answered.flatMap((c) => c.answer.body.data.dailyMetrics.map((r) => r.date)))].sort();
      const metricName = state.metric === "events" ? "Events" : "Users";
      $("#daily-title").textContent = `Daily ${metricName.toLowerCase()} by source`;
      const datasets = answered.map((c, i) => {
        const byDate = new Map(c.answer.body.data.dailyMetrics.map((r) => [r.date, r[state.metric]]));
        const color = PALETTE[i % PALETTE.length];
        return {
          label: c.detail ? c.detail.badge : c.id,
          data: dates.map((date) => byDate.get(date) ?? null),
          borderColor: color,
          backgroundColor: color,
          tension: 0.2,
          pointRadius: 0,
        };
      });
      canvas.setAttribute("aria-label", `Daily ${metricName.toLowerCase()} of each source: ${datasets.map((d) => d.label).join(", ")}`);
      chart("daily", canvas, {
        type: "line",
        data: { labels: dates, datasets },
        options: { ...BASE_OPTIONS, scales: { x: DAY_AXIS, y: { beginAtZero: true, title: { display: true, text: metricName } } } },
      });
      return;
    }
    $("#daily-title").textContent = "Daily users and events";
    const rows = data ? data.dailyMetrics : [];
    const marked = { users: unusualDays("merged.daily.users"), events: unusualDays("merged.daily.events") };
    canvas.dataset.anomalies = JSON.stringify({ users: [...marked.users.keys()], events: [...marked.events.keys()] });
    renderAnomalyNote(marked);
    const ahead = { users: forecastOf("merged.daily.users"), events: forecastOf("merged.daily.events") };
    const future = (ahead.users.length ? ahead.users : ahead.events).map((p) => p.date);
    const pad = (values) => values.concat(future.map(() => null));
    const points = (field, color) => ({
      pointRadius: pad(rows.map((r) => (marked[field].has(r.date) ? 5 : 0))),
      pointBackgroundColor: pad(rows.map((r) => (marked[field].has(r.date) ? ANOMALY_COLOR : color))),
    });
    const observed = (field, label, color, axis) => ({
      label, data: pad(rows.map((r) => r[field])), borderColor: color, backgroundColor: color, yAxisID: axis, tension: 0.2, ...points(field, color),
    });
    canvas.setAttribute("aria-label", `Daily users and events over ${rows.length} days` +
      (future.length ? `, and a forecast of the next ${future.length} days (dashed)` : ""));
    chart("daily", canvas, {
      type: "line",
      data: {
        labels: rows.map((r) => r.date).concat(future),
        datasets: [
          observed("users", "Users", PALETTE[0], "y"),
          observed("events", "Events", PALETTE[1], "events"),
          ...forecastLines(rows, "users", "Users", ahead.users, PALETTE[0], "y"),
          ...forecastLines(rows, "events", "Events", ahead.events, PALETTE[1], "events"),
        ],
      },
      options: {
        ...BASE_OPTIONS,
        plugins: { legend: { position: "bottom", labels: { filter: (item) => !item.text.includes("80%") } } },
        scales: {
          x: DAY_AXIS,
          y: { beginAtZero: true, position: "left", title: { display: true, text: "Users" } },
          events: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "Events" } },
        },
      },
    });
  }

  /** The forecast days of one series of the last forecast answer. */
  function forecastOf(name) {
    const series = forecasts.find((s) => s.name === name);
    return series && series.forecast ? series.forecast.points : [];
  }

  /**
   * A dashed line from the last observed day through the forecast, and the 80% interval
   * as a band between two borderless lines (left out of the legend).
   */
  function forecastLines(rows, field, label, ahead, color, axis) {
    if (!ahead.length || !rows.length) return [];
    const before = rows.map((r, i) => (i === rows.length - 1 ? r[field] : null));
    const line = (name, values, extra) => ({
      label: name, data: before.concat(values), borderColor: color, backgroundColor: `${color}22`,
      yAxisID: axis, tension: 0.2, pointRadius: 0, ...extra,
    });
    return [
      line(`${label} forecast`, ahead.map((p) => p.value), { borderDash: [6, 4] }),
      line(`${label} 80% low`, ahead.map((p) => p.lower80), { borderWidth: 0 }),
      line(`${label} 80% high`, ahead.map((p) => p.upper80), { borderWidth: 0, fill: "-1" }),
    ];
  }

  /** The related series of the window, in words, strongest first. */
  function renderCorrelations() {
    const items = correlations.map((p) =>
      el("li", { "data-pair": `${p.a}|${p.b}`, "data-lag": String(p.lag), title: `${p.n} days, Spearman ${p.spearman.toFixed(2)}, p = ${p.pValue.toPrecision(2)}` },
        p.sentence));
    const section = $("#correlations");
    section.hidden = items.length === 0;
    section.querySelector("ul").replaceChildren(...items);
  }

  const ANOMALY_COLOR = "#c62828";

  /** date -> anomaly of one series of the last anomalies answer. */
  function unusualDays(name) {
    const series = anomalies.find((s) => s.name === name);
    return new Map((series ? series.anomalies : []).map((a) => [a.date, a]));
  }

  /** Under the daily chart, in words: which days are unusual and against what. */
  function renderAnomalyNote(marked) {
    const items = [];
    for (const [field, days] of Object.entries(marked)) {
      for (const a of days.values()) {
        const label = field === "users" ? "users" : "events";
        items.push(el("li", { "data-anomaly": `${field}:${a.date}` },
          `${dayFormat.format(new Date(`${a.date}T00:00:00Z`))}: ${formatCount(a.value)} ${label}, expected about ${formatCount(Math.round(a.expected))}`));
      }
    }
    const note = $("#anomalies-note");
    note.hidden = items.length === 0;
    note.querySelector("ul").replaceChildren(...items);
  }

  function renderFeatures(rows) {
    const top = [...(rows || [])].sort((a, b) => b.views - a.views);
    const canvas = $("#features-chart");
    // One bar per feature, each tall enough to read.
    canvas.parentElement.style.height = `${Math.max(240, 40 + 28 * top.length)}px`;
    canvas.dataset.labels = top.map((r) => r.feature).join("|");
    canvas.setAttribute("aria-label", `Views by feature: ${top.map((r) => `${r.feature} ${r.views}`).join(", ")}`);
    chart("features", canvas, {
      type: "bar",
      data: {
        labels: top.map((r) => r.feature),
        datasets: [{ label: "Views", data: top.map((r) => r.views), backgroundColor: PALETTE[0] }],
      },
      options: { ...BASE_OPTIONS, indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true } } },
    });
  }

  function renderClients() {
    const { field, descending } = sort;
    const rows = [...(clients || [])].sort((a, b) => {
      const order = field === "client"
        ? String(a.client).localeCompare(String(b.client))
        : (a[field] ?? 0) - (b[field] ?? 0);
      return descending ? -order : order;
    });
    for (const th of document.querySelectorAll("#clients th")) {
      const button = th.querySelector("button");
      th.setAttribute("aria-sort", button.dataset.sort === field ? (descending ? "descending" : "ascending") : "none");
    }
    const cell = (row, name) =>
      el("td", { "data-field": name, "data-value": row[name] ?? "", class: name === "client" ? null : "num" },
        name === "client" ? row.client : formatCount(row[name]));
    $("#clients tbody").replaceChildren(
      ...(rows.length
        ? rows.map((row) => el("tr", { "data-client": row.client },
          cell(row, "client"), cell(row, "events"), cell(row, "users"), cell(row, "page_views")))
        : [el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No clients in this view."))]),
    );
  }

  // ---- start ---------------------------------------------------------------------------

  async function start() {
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = getComputedStyle(document.body).color;
    wireControls();
    const listed = await requestJson("/api/sources");
    if (listed.ok) {
      sources = listed.body.data.sources.filter((s) => s.enabled);
      buildSourceOptions();
    }
    await load();
  }

  start();
})();
