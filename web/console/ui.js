// What the console's pages share: finding elements, messages, tables whose cells may be
// elements (links, buttons), and a long job's progress.

import { el } from "../sessionlog.js";

export const $ = (id) => document.getElementById(id);

/** Show an error (or clear it with null). An error puts away the last success line: "Added
 * pm@example.org" beside "an account with pm@example.org exists" read as both. */
export function fail(error) {
  $("console-error").textContent = error ? error.message || String(error) : "";
  if (error) say("");
}

/** A short status line read out by screen readers ("Imported 3 people"). */
export function say(text) {
  $("console-status").textContent = text;
}

/** A table; a cell is text or an element. */
export function grid(header, rows, empty, { caption } = {}) {
  if (!rows.length) return el("p", { class: "muted" }, empty);
  const cell = (c) => (c instanceof Node ? c : String(c ?? "–"));
  // A table wider than a phone scrolls sideways: focusable, so the keyboard can scroll it.
  return el("div", { class: "console-scroll", tabindex: 0, role: "region", "aria-label": `${caption || header.join(", ")} (table)` }, el("table", { class: "log-table console-table" },
    caption ? el("caption", { class: "visually-hidden" }, caption) : null,
    el("thead", {}, el("tr", {}, ...header.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows.map((row) => el("tr", {}, ...row.map((c) => el("td", { dir: "auto" }, cell(c))))))));
}

/** A button that runs `action`, shows failures, and is disabled while it runs. */
export function action(label, run, attrs = {}) {
  const button = el("button", { type: "button", ...attrs }, label);
  button.addEventListener("click", async () => {
    fail(null);
    button.disabled = true;
    try {
      await run(button);
    } catch (error) {
      fail(error);
    } finally {
      if (button.isConnected) button.disabled = false;
      document.dispatchEvent(new Event("console:changed"));
    }
  });
  return button;
}

/** Run `work` while a progress element shows it (indeterminate unless `value` is set). */
export async function busy(progress, work) {
  progress.hidden = false;
  progress.removeAttribute("value");
  try {
    return await work();
  } finally {
    progress.hidden = true;
  }
}

/** "1 pair", "3 pairs", "2 people". */
export const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

export function ago(ts) {
  if (!ts) return "never";
  const days = (Date.now() / 1000 - ts) / 86400;
  if (days < 1) return "today";
  if (days < 2) return "yesterday";
  return `${Math.floor(days)} days ago`;
}

/** The children that are there (a condition's `null` is left out). */
export function present(...children) {
  return children.filter((c) => c !== null && c !== undefined);
}

/** Call `tick` every `ms` while the page section `pageId` is shown, skipping while the tab is
 * hidden (a background tab asks nothing). It stops when the page is left, when `tick` fails
 * with 401 or 403 (signed out, or the role changed), or when the returned function is called.
 * Other errors are shown and it goes on: a server restart should not freeze the page. */
export function repeatWhileShown(pageId, ms, tick) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    if (stopped || $(pageId).hidden) return;
    if (document.visibilityState === "visible") {
      try {
        await tick();
      } catch (error) {
        fail(error);
        if (error.status === 401 || error.status === 403) return;
      }
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  timer = setTimeout(run, ms);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
