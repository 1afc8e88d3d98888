// The operator's program-health page: numbers and charts from GET /api/v1/program/health.

import { call, KEY } from "./console/api.js";
import { barChart, bdi, el, minutes, table, when } from "./sessionlog.js";

const $ = (id) => document.getElementById(id);
const TRIED = "pairwise.healthKeyTried"; // an error shows only after a key was typed here

function percent(share) {
  return share === null ? "–" : `${Math.round(share * 100)}%`;
}

function card(label, value) {
  return el("div", { class: "log-stat" }, el("span", {}, label), el("b", {}, value));
}

/** A table of pairs: a click anywhere on a row goes through to the pair in the console (the
 * first cell's link, which the keyboard and screen readers use). */
function pairTable(header, items, cells, empty) {
  if (!items.length) return el("p", { class: "muted" }, empty);
  const row = (item) => {
    const link = el("a", { href: `/console#pair/${encodeURIComponent(item.pair_id)}` }, bdi(item.title));
    const tr = el("tr", { class: "log-row-link", "data-pair": item.pair_id }, el("td", {}, link),
      ...cells(item).map((c) => el("td", { dir: "auto" }, String(c))));
    tr.addEventListener("click", (event) => {
      if (event.target.closest("a") || getSelection().toString()) return; // a link, or text being copied
      location.assign(link.href);
    });
    return tr;
  };
  return el("table", { class: "log-table" },
    el("thead", {}, el("tr", {}, ...header.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...items.map(row)));
}

function render(health) {
  $("cards").replaceChildren(
    card("Pairs matched", `${health.pairs_active} active / ${health.pairs_total}`),
    card("Sessions", String(health.sessions_total)),
    card("Median duration", minutes(health.median_duration_seconds)),
    card("Needed a fallback", percent(health.fallback_share)),
    card("Average rating", health.average_rating === null ? "–" : `${health.average_rating.toFixed(1)} / 5 (${health.ratings})`),
    card("Not met yet", String(health.not_met.length)),
    card("Going quiet", String(health.going_quiet.length)),
    card("Match-fit flags", String(health.flagged.length)),
  );
  const weekLabel = (w) => w.week.slice(5);
  $("chart-weeks").replaceChildren(barChart(
    health.weeks.map((w) => ({ label: weekLabel(w), value: w.sessions })), { title: "Sessions per week", width: $("chart-weeks").clientWidth }));
  $("chart-fallback").replaceChildren(barChart(
    health.weeks.map((w) => ({ label: weekLabel(w), value: w.fallback_rate === null ? null : w.fallback_rate * 100 })),
    { title: "Sessions that needed a fallback", unit: "%", top: 100, width: $("chart-fallback").clientWidth }));
  $("fallback-steps").replaceChildren(table(["Step", "Sessions"], Object.entries(health.fallback_steps), "No fallbacks."));
  $("chart-ratings").replaceChildren(barChart(
    Object.entries(health.rating_distribution).map(([n, count]) => ({ label: `${n}★`, value: count })),
    { title: "Rating distribution", width: $("chart-ratings").clientWidth }));
  $("months").replaceChildren(table(["Month", "Sessions", "Pairs", "Per pair"],
    health.months.map((m) => [m.month, m.sessions, m.pairs, m.per_pair.toFixed(2)]), "No sessions yet."));
  $("not-met").replaceChildren(pairTable(["Pair", "Matched", "Days since"],
    health.not_met, (n) => [when(n.matched_at), Math.floor(n.days_since_matched)],
    "Every active pair has met at least once."));
  $("quiet").replaceChildren(pairTable(["Pair", "Last session or message", "Days quiet"],
    health.going_quiet, (q) => [when(q.last_activity), Math.floor(q.days_quiet)],
    `Every pair met or wrote in the last ${health.quiet_days} days, or was matched more recently.`));
  $("flagged").replaceChildren(pairTable(["Pair", "Reason"],
    health.flagged, (f) => [f.reason || ""], "No pair is flagged."));
}

/** Admin-only parts (the transcript setting and its reads) answer 403 to a manager or a
 * viewer: those parts are hidden for them, the rest of the page is theirs. */
async function adminPart(path) {
  try {
    return await call("GET", path);
  } catch (error) {
    if (error.status === 403) return null;
    throw error;
  }
}

async function load() {
  const days = $("quiet-days").value || "14";
  const [health, settings, reads] = await Promise.all([
    call("GET", `/api/v1/program/health?quiet_days=${encodeURIComponent(days)}`),
    adminPart("/api/v1/program/settings"),
    adminPart("/api/v1/program/transcript-reads"),
  ]);
  // Shown before drawing: the charts are drawn at the width they are shown at.
  $("key-form").hidden = true;
  $("report").hidden = false;
  render(health);
  $("privacy").hidden = settings === null;
  if (settings === null) return;
  $("read-chat").checked = settings.operators_read_chat;
  $("reads").replaceChildren(table(["When", "Who", "What", "Allowed", "Messages"],
    reads.reads.slice(0, 20).map((r) => [when(r.ts), r.actor, r.purpose, r.granted ? "yes" : "no", r.messages]),
    "No operator has read a transcript."));
}

/** Fetch an export with the same credentials and hand it to the browser as a download. */
async function download(path, filename) {
  const text = await call("GET", path);
  const blob = new Blob([typeof text === "string" ? text : JSON.stringify(text, null, 1)]);
  const link = el("a", { href: URL.createObjectURL(blob), download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

/** A signed-in operator (session cookie) or the admin key in this tab: show the report;
 * neither: the sign-in choices. */
async function show() {
  try {
    await load();
  } catch (error) {
    // 401: nobody signed in (or a wrong key); 403: signed in as someone who may not see
    // it (a participant): either way, the operator's choices.
    if (error.status === 401 || error.status === 403) {
      sessionStorage.removeItem(KEY);
      $("key-error").textContent = error.status === 403
        ? "Program health is for operators: sign in as one, or use the admin key."
        : sessionStorage.getItem(TRIED) ? error.message : "";
      $("key-form").hidden = false;
      $("report").hidden = true;
      return;
    }
    $("report-error").textContent = error.message;
  }
  $("key-form").hidden = true;
  $("report").hidden = false;
  $("forget").hidden = !sessionStorage.getItem(KEY);
}

function start() {
  const guard = (action) => async () => {
    $("report-error").textContent = "";
    try {
      await action();
    } catch (error) {
      $("report-error").textContent = error.message;
    }
  };
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("admin-key").value.trim());
    sessionStorage.setItem(TRIED, "1");
    $("admin-key").value = "";
    show();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    location.reload();
  });
  $("refresh").addEventListener("click", guard(load));
  $("quiet-days").addEventListener("change", guard(load));
  $("read-chat").addEventListener("change", guard(async () => {
    await call("PUT", "/api/v1/program/settings", { operators_read_chat: $("read-chat").checked });
  }));
  $("export-json").addEventListener("click", guard(() => download("/api/v1/program/export?format=json", "program.json")));
  $("export-csv").addEventListener("click", guard(() => download("/api/v1/program/export?format=csv", "program.csv")));
  show();
}

start();
