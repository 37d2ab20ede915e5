// The admin page at `/admin/sources`: every source with its health, last fetch, last error,
// latency, cache (stale entries too) and history backfill, the files that failed validation (and, beside a
// source, a rejected change to its file), the configuration generation, and the actions
// an admin needs (re-check a source, clear one cache or all, reload the sources). It reads and acts only through the JSON API.
// The ids and data-* attributes the browser tests read are listed in docs/pages.md.
"use strict";

(() => {
  const { el, requestJson, errorMessage, ago, duration, localTime, sourceLabel } = window.MetricsHub;
  const $ = (selector) => document.querySelector(selector);
  const main = $("#admin");

  const HEALTH_TEXT = { ok: "OK", failing: "Failing", unknown: "Not queried yet", disabled: "Disabled" };

  function notice(message) {
    $("#notice").textContent = message;
  }

  function showError(message) {
    $("#error").textContent = message;
    $("#error").hidden = !message;
  }

  function when(iso) {
    return iso ? el("time", { datetime: iso, title: localTime(iso) }, ago(iso)) : el("span", { class: "muted" }, "never");
  }

  const BACKFILL_TEXT = { waiting: "waiting to start", running: "backfilling", done: "up to date", failing: "failing" };

  // A source with `history:`: how many settled days are stored and what the backfill does.
  function history(info) {
    if (!info) return null;
    const backfill = info.backfill;
    const size = backfill.size ? ` · ${Math.round(backfill.size.bytes / 1024)} KiB` : "";
    return el("div", { class: "muted small", "data-history-state": backfill.state },
      `History: ${backfill.storedDays}/${backfill.targetDays} settled days stored, ` +
      `${BACKFILL_TEXT[backfill.state] || backfill.state}${size}`,
      backfill.lastError ? el("div", {}, `last error: ${backfill.lastError}`) : null);
  }

  function row(source) {
    const check = source.lastCheck;
    const error = source.lastError;
    const cache = source.cache || {};
    const cacheText = source.cacheTtlSeconds === 0 && !source.staleIfErrorSeconds
      ? "off"
      : `TTL ${duration(source.cacheTtlSeconds)} · ${cache.entries} ${cache.entries === 1 ? "entry" : "entries"}` +
        (cache.staleEntries ? ` (${cache.staleEntries} stale)` : "") +
        (cache.newestFetchedAt ? ` · newest ${ago(cache.newestFetchedAt).replace(" ago", " old")}` : "") +
        (source.staleWhileRevalidateSeconds ? ` · stale-while-revalidate ${duration(source.staleWhileRevalidateSeconds)}` : "") +
        (source.staleIfErrorSeconds ? ` · stale-if-error ${duration(source.staleIfErrorSeconds)}` : "");
    const rejected = source.rejectedChange;
    return el("tr", { "data-source": source.id },
      el("td", { "data-field": "name" },
        el("strong", {}, sourceLabel(source)),
        el("div", { class: "muted small" }, el("code", {}, source.id), " · ", source.file),
        source.description ? el("div", { class: "muted small" }, source.description) : null,
        rejected
          ? el("div", { class: "banner warning small", "data-rejected": source.id },
            "The file changed and the new version is invalid; this version keeps serving: ",
            el("ul", {}, ...rejected.map((e) => el("li", {},
              e.line ? `line ${e.line} · ` : "", e.path ? el("code", {}, e.path) : "(whole file)", `: ${e.message}`))))
          : null),
      el("td", { "data-field": "kind" }, source.kind),
      el("td", { "data-field": "enabled" }, source.enabled ? "yes" : "no"),
      el("td", { "data-field": "health" },
        el("span", { class: `health ${source.health}`, "data-health": source.health }, HEALTH_TEXT[source.health] || source.health),
        check
          ? el("div", { class: "muted small", "data-check": check.status },
            `checked ${ago(check.checkedAt)}: ${check.status === "ok" ? `ok in ${check.latencyMs} ms` : check.error || "down"}`)
          : null,
        el("button", {
          type: "button", class: "small", "data-action": "check", "data-source": source.id,
          disabled: !source.enabled, "aria-label": `Re-check: ${source.name}`,
        }, "Re-check")),
      el("td", { "data-field": "last-success" }, when(source.lastSuccess)),
      el("td", { "data-field": "last-error" },
        error
          ? [el("code", {}, error.code), " ", error.message, el("div", { class: "muted small" }, when(error.at))]
          : el("span", { class: "muted" }, "none")),
      el("td", { "data-field": "latency", class: "num" }, source.latencyMs == null ? "–" : `${source.latencyMs} ms`),
      el("td", { "data-field": "cache", "data-stale-entries": String(cache.staleEntries || 0) }, cacheText, history(source.history)),
      el("td", {},
        el("button", {
          type: "button", class: "small", "data-action": "clear", "data-source": source.id,
          "aria-label": `Clear cache: ${source.name}`,
        }, "Clear cache")));
  }

  function renderInvalid(files) {
    $("#invalid-files").hidden = files.length === 0;
    $("#invalid-list").replaceChildren(
      ...files.map((file) => el("article", { class: "invalid-file banner warning", "data-file": file.file },
        el("h3", {}, file.file),
        el("ul", {}, ...file.errors.map((error) => el("li", {},
          error.line ? `line ${error.line} · ` : "",
          error.path ? el("code", {}, error.path) : "(whole file)",
          `: ${error.message}`))))),
    );
  }

  let generation = 0; // a newer load makes the answers of older ones stale

  async function load() {
    const mine = ++generation;
    main.dataset.status = "loading";
    main.setAttribute("aria-busy", "true");
    const answer = await requestJson("/api/sources");
    if (mine !== generation) return;
    if (!answer.ok) {
      showError(errorMessage(answer));
      main.dataset.status = "error";
      main.removeAttribute("aria-busy");
      return;
    }
    showError("");
    const { sources, invalidFiles, generation: config } = answer.body.data;
    $("#sources tbody").replaceChildren(...sources.map(row));
    if (config) {
      const holder = $("#generation");
      holder.dataset.generation = String(config.number);
      holder.replaceChildren(`Configuration generation ${config.number}, loaded `, when(config.loadedAt));
    }
    renderInvalid(invalidFiles);
    main.dataset.status = "ready";
    main.removeAttribute("aria-busy");
  }

  async function act(button) {
    const id = button.dataset.source;
    button.disabled = true;
    let answer;
    if (button.dataset.action === "check") {
      notice(`Checking ${id}…`);
      answer = await requestJson(`/api/sources/${encodeURIComponent(id)}/check`, { method: "POST" });
      if (answer.ok) {
        const health = answer.body.data;
        notice(health.status === "ok"
          ? `${id} answered its health check in ${health.latencyMs} ms`
          : `${id} is down: ${health.error || "no reason given"}`);
      }
    } else {
      answer = await requestJson(`/api/cache/clear?source=${encodeURIComponent(id)}`, { method: "POST" });
      if (answer.ok) notice(`Cache cleared for ${id}`);
    }
    const action = button.dataset.action;
    if (!answer.ok) notice(`Could not ${action === "check" ? "check" : "clear"} ${id}: ${errorMessage(answer)}`);
    await load();
    // The table was redrawn (or, if reloading failed, still holds the disabled button):
    // keep keyboard users where they were.
    button.disabled = false;
    const again = document.querySelector(`button[data-action="${action}"][data-source="${CSS.escape(id)}"]`);
    if (again) again.focus();
  }

  $("#sources").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button) act(button);
  });
  $("#clear-all").addEventListener("click", async () => {
    const answer = await requestJson("/api/cache/clear", { method: "POST" });
    notice(answer.ok
      ? `Cache cleared for every source (${answer.body.data.cleared.length})`
      : `Could not clear the caches: ${errorMessage(answer)}`);
    await load();
  });
  $("#reload").addEventListener("click", () => load());
  $("#reload-sources").addEventListener("click", async () => {
    notice("Reloading the sources directory…");
    const answer = await requestJson("/api/admin/reload", { method: "POST" });
    if (answer.ok) {
      const r = answer.body.data;
      notice(`Generation ${r.generation.number}: ${r.added.length} added, ${r.changed.length} changed, ` +
        `${r.removed.length} removed, ${r.kept.length} kept, ${r.rejected.length} rejected`);
    } else {
      notice(`Could not reload: ${errorMessage(answer)}`);
    }
    await load();
  });

  load();
})();
