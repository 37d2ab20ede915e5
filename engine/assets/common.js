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

  /** Where the API token lives: this tab's session only (never the URL, never a cookie). */
  const TOKEN_KEY = "metrics-hub-token";

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (err) {
      return null;
    }
  }

  /** One token prompt at a time: concurrent refusals wait for the same answer. */
  let pendingPrompt = null;

  /** Asks for a token in a modal dialog (ids in docs/pages.md); resolves with the token,
   *  or null when the person cancels. `reason` is the API's message. */
  function askForToken(reason) {
    if (pendingPrompt) return pendingPrompt;
    pendingPrompt = new Promise((resolve) => {
      const input = el("input", { id: "token-input", type: "password", name: "token", autocomplete: "off", required: true, spellcheck: "false" });
      const form = el("form", { method: "dialog", id: "token-form" },
        el("h2", {}, "API token needed"),
        el("p", { id: "token-reason" }, reason || "This hub needs an API token."),
        el("label", { for: "token-input" }, "API token"),
        input,
        el("div", { class: "token-actions" },
          el("button", { type: "submit", id: "token-submit", value: "use" }, "Use token"),
          el("button", { type: "button", id: "token-cancel" }, "Cancel")));
      const dialog = el("dialog", { id: "token-dialog", "aria-labelledby": "token-reason" }, form);
      document.body.append(dialog);
      const finish = (token) => {
        dialog.close();
        dialog.remove();
        pendingPrompt = null;
        resolve(token);
      };
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        try {
          sessionStorage.setItem(TOKEN_KEY, token);
        } catch (err) {
          // Without storage the token still serves this page load.
        }
        finish(token);
      });
      dialog.querySelector("#token-cancel").addEventListener("click", () => finish(null));
      dialog.addEventListener("cancel", () => finish(null));
      dialog.showModal();
      input.focus();
    });
    return pendingPrompt;
  }

  /** Fetches JSON from the hub: `{ok, status, body}`; `body` is null when the hub could not be
   *  reached or did not answer JSON. When the API asks for a token (401, or 403 for a token
   *  without the scope) the person is asked for one and the request is sent again. */
  async function requestJson(path, options = {}, token = storedToken()) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(path, { cache: "no-store", ...options, headers });
    } catch (err) {
      return { ok: false, status: 0, body: null, failure: "The hub could not be reached." };
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      return { ok: false, status: response.status, body: null, failure: `The hub answered ${response.status} without JSON.` };
    }
    if (response.status === 401 || response.status === 403) {
      const next = await askForToken(body && body.error && body.error.message);
      if (next) return requestJson(path, options, next);
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
