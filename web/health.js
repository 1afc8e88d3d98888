// The operator's program-health page: numbers and charts from GET /api/v1/program/health.

import { api, barChart, bdi, download, el, minutes, table, when } from "./sessionlog.js";

const $ = (id) => document.getElementById(id);
const KEY = "pairwise.adminKey";

function percent(share) {
  return share === null ? "–" : `${Math.round(share * 100)}%`;
}

function card(label, value) {
  return el("div", { class: "log-stat" }, el("span", {}, label), el("b", {}, value));
}

/** A table of pairs whose first cell links through to the pair in the console. */
function pairTable(header, items, cells, empty) {
  if (!items.length) return el("p", { class: "muted" }, empty);
  const link = (item) => el("a", { href: `/console#pair/${encodeURIComponent(item.pair_id)}` }, bdi(item.title));
  return el("table", { class: "log-table" },
    el("thead", {}, el("tr", {}, ...header.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...items.map((item) => el("tr", {}, el("td", {}, link(item)),
      ...cells(item).map((c) => el("td", { dir: "auto" }, String(c)))))));
}

function render(health) {
  $("cards").replaceChildren(
    card("Pairs matched", `${health.pairs_active} active / ${health.pairs_total}`),
    card("Sessions", String(health.sessions_total)),
    card("Median duration", minutes(health.median_duration_seconds)),
    card("Needed a fallback", percent(health.fallback_share)),
    card("Average rating", health.average_rating === null ? "–" : `${health.average_rating.toFixed(1)} / 5 (${health.ratings})`),
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
  $("quiet").replaceChildren(pairTable(["Pair", "Last session or message", "Days quiet"],
    health.going_quiet, (q) => [when(q.last_activity), Math.floor(q.days_quiet)],
    `Every pair met or wrote in the last ${health.quiet_days} days.`));
  $("flagged").replaceChildren(pairTable(["Pair", "Reason"],
    health.flagged, (f) => [f.reason || ""], "No pair is flagged."));
}

async function load(key) {
  const days = $("quiet-days").value || "14";
  const [health, settings, reads] = await Promise.all([
    api(key, "GET", `/api/v1/program/health?quiet_days=${encodeURIComponent(days)}`),
    api(key, "GET", "/api/v1/program/settings"),
    api(key, "GET", "/api/v1/program/transcript-reads"),
  ]);
  // Shown before drawing: the charts are drawn at the width they are shown at.
  $("key-form").hidden = true;
  $("report").hidden = false;
  render(health);
  $("read-chat").checked = settings.operators_read_chat;
  $("reads").replaceChildren(table(["When", "Who", "What", "Allowed", "Messages"],
    reads.reads.slice(0, 20).map((r) => [when(r.ts), r.actor, r.purpose, r.granted ? "yes" : "no", r.messages]),
    "No operator has read a transcript."));
}

async function show(key) {
  try {
    await load(key);
  } catch (error) {
    if (error.status === 401) {
      sessionStorage.removeItem(KEY);
      $("key-error").textContent = error.message;
      $("key-form").hidden = false;
      $("report").hidden = true;
      return;
    }
    $("report-error").textContent = error.message;
  }
  $("key-form").hidden = true;
  $("report").hidden = false;
  $("forget").hidden = false;
}

function start() {
  const guard = (action) => async () => {
    $("report-error").textContent = "";
    try {
      await action(sessionStorage.getItem(KEY));
    } catch (error) {
      $("report-error").textContent = error.message;
    }
  };
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("admin-key").value.trim());
    $("admin-key").value = "";
    show(sessionStorage.getItem(KEY));
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    location.reload();
  });
  $("refresh").addEventListener("click", guard(load));
  $("quiet-days").addEventListener("change", guard(load));
  $("read-chat").addEventListener("change", guard(async (key) => {
    await api(key, "PUT", "/api/v1/program/settings", { operators_read_chat: $("read-chat").checked });
  }));
  $("export-json").addEventListener("click", guard((key) => download(key, "/api/v1/program/export?format=json", "program.json")));
  $("export-csv").addEventListener("click", guard((key) => download(key, "/api/v1/program/export?format=csv", "program.csv")));
  const key = sessionStorage.getItem(KEY);
  if (key) show(key);
  else $("key-form").hidden = false;
}

start();
