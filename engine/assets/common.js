// Helpers shared by the dashboard and the admin page. Everything a source or a file
// supplied is put on the page as text (textContent), never as markup.
"use strict";

window.MetricsHub = (() => {
  /** Creates an element: `attrs` become attributes (`class`, `data-*`, ...), children are
   *  nodes or strings (strings as text). */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** Fetches JSON from the hub: `{ok, status, body}`; `body` is null when the hub could not be
   *  reached or did not answer JSON. */
  async function requestJson(path, options = {}) {
    let response;
    try {
      response = await fetch(path, {
        cache: "no-store",
        headers: { Accept: "application/json" },
        ...options,
      });
    } catch (err) {
      return { ok: false, status: 0, body: null, failure: "The hub could not be reached." };
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      return { ok: false, status: response.status, body: null, failure: `The hub answered ${response.status} without JSON.` };
    }
    return { ok: response.ok && body && body.success !== false, status: response.status, body };
  }

  /** The message of an API error body, or a generic one. */
  function errorMessage(result) {
    if (result.failure) return result.failure;
    const error = result.body && result.body.error;
    if (error && error.message) return error.message;
    return `The hub answered ${result.status}.`;
  }

  const counts = new Intl.NumberFormat(undefined);
  function formatCount(value) {
    return typeof value === "number" ? counts.format(value) : "–";
  }

  /** "12 s ago", "3 min ago", "2 h ago", "4 days ago". */
  function ago(iso, now = Date.now()) {
    if (!iso) return "never";
    const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return `${Math.floor(seconds / 86400)} days ago`;
  }

  /** A duration in seconds as people say it: "45 s", "5 min", "2 h". */
  function duration(seconds) {
    if (seconds < 60) return `${seconds} s`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
    return `${Math.round(seconds / 360) / 10} h`;
  }

  /** A source's badge then its name; just the name when the file set no badge (the badge
   *  is the name then). */
  function sourceLabel(source) {
    return source.badge && source.badge !== source.name
      ? [el("span", { class: "badge" }, source.badge), " ", source.name]
      : [source.name];
  }

  function localTime(iso) {
    return iso ? new Date(iso).toLocaleString() : "";
  }

  return { el, requestJson, errorMessage, formatCount, ago, duration, localTime, sourceLabel };
})();
