// Phone: the SIP gateway as operators watch it. The trunk and the gateway's registration
// there (GET /api/v1/phone/trunk), and PIN guessing (GET /api/v1/phone/guessing): PINs
// refused in the last hour and since start by reason, the addresses blocked and until
// when, whether the limit for all callers together is reached, the last refusals. The
// server never sends the digits tried. Read-only: viewers see it too.

import { el, when } from "../sessionlog.js";
import { pinReason, pinVia } from "../timeline.js";
import { call } from "./api.js";
import { $, action, grid, repeatWhileShown } from "./ui.js";

const STATE = {
  registering: "registering now",
  registered: "registered",
  failed: "not registered: the last try failed, it tries again",
  unregistered: "not registered",
};
const clock = (ts) => new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

function trunkCard(t) {
  if (!t.trunk) return el("p", {}, "No trunk is set up: callers reach the gateway directly.");
  const lines = [el("p", {}, "Trunk: ", el("code", {}, t.trunk))];
  if (!t.registers) lines.push(el("p", {}, "The gateway does not register there."));
  else {
    lines.push(el("p", { id: "trunk-state" }, `Registration: ${STATE[t.state] || t.state}`));
    if (t.expires_in !== null) lines.push(el("p", {}, `Lapses in ${Math.round(t.expires_in)} s unless renewed.`));
    if (t.failures) lines.push(el("p", { class: "error" }, `${t.failures} failed tries in a row${t.last_error ? `: ${t.last_error}` : ""}.`));
  }
  return el("div", {}, ...lines);
}

function counts(byReason) {
  const entries = Object.entries(byReason);
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  if (!total) return "none";
  return `${total} (${entries.map(([reason, n]) => `${pinReason(reason)}: ${n}`).join("; ")})`;
}

function guessingCard(g) {
  return el("div", {},
    el("p", { id: "guessing-limit", class: g.global_engaged ? "error" : null },
      g.global_engaged
        ? `The limit for all callers together is reached (${g.global_per_minute} wrong PINs a minute): PINs from new addresses are not checked until it eases.`
        : `The limit for all callers together (${g.global_per_minute} wrong PINs a minute) is not reached.`),
    el("p", {}, `Refused in the last hour: ${counts(g.last_hour)}.`),
    el("p", {}, `Refused since the gateway started: ${counts(g.since_start)}.`),
    el("h3", {}, "Blocked addresses"),
    el("p", { class: "muted" }, `An address is blocked after ${g.per_source} wrong PINs within ${Math.round(g.window_seconds / 60)} minutes: its calls are refused.`),
    grid(["Address", "Blocked until"], g.blocked.map((b) => [el("code", {}, b.source), clock(b.until)]),
      "No address is blocked.", { caption: "Blocked addresses" }),
    el("h3", {}, "Last refusals"),
    grid(["When", "From", "Why", "PIN", "Room"],
      g.recent.map((r) => [when(r.at), el("code", {}, r.source), pinReason(r.reason), pinVia(r.via), r.room || "–"]),
      "No PIN has been refused.", { caption: "Last refused PINs" }));
}

// While the page is on screen it looks again every few seconds (a guesser blocked, the trunk
// registered), redrawing only what changed so a reader's place in the tables stays.
const REFRESH_MS = 5000;
const watch = { seen: null, stop: () => {} };

/** Draw the page from the server; false when the server has no phone gateway. */
async function draw() {
  let trunk, guessing;
  try {
    [trunk, guessing] = await Promise.all([call("GET", "/api/v1/phone/trunk"), call("GET", "/api/v1/phone/guessing")]);
  } catch (error) {
    if (error.code !== "phone_disabled") throw error;
    $("phone-trunk").replaceChildren(el("p", {}, "Phone dial-in is not enabled on this server."));
    $("phone-guessing").replaceChildren();
    return false;
  }
  $("phone-trunk").replaceChildren(trunkCard(trunk)); // a few lines, its countdown always moves
  const seen = JSON.stringify(guessing);
  if (seen !== watch.seen) $("phone-guessing").replaceChildren(guessingCard(guessing));
  watch.seen = seen;
  return true;
}

export async function show() {
  watch.stop();
  watch.seen = null;
  if (await draw()) watch.stop = repeatWhileShown("phone", REFRESH_MS, draw);
}

export function init() {
  $("phone-refresh").replaceChildren(action("Refresh", () => show()),
    el("p", { class: "muted" }, "This page updates by itself every few seconds."));
}
