// Activity: who did what, from the audit log (GET /api/v1/privacy/audit), newest first.

import { el, when } from "../sessionlog.js";
import { call } from "./api.js";
import { $, grid } from "./ui.js";

const WHAT = {
  console_import: (d) => `imported ${d.imported} people (${d.errors} rows to fix)`,
  console_edit: () => "edited a profile",
  console_deactivate: () => "deactivated",
  console_reactivate: () => "reactivated",
  pair_end: () => "ended a pair",
  pair_invite: (d) => `invited ${d.members} members again`,
};

export async function show() {
  const { entries } = await call("GET", "/api/v1/privacy/audit");
  $("activity-feed").replaceChildren(grid(["When", "Who", "What", "Whom"],
    entries.map((e) => [when(e.ts), el("bdi", {}, e.actor), (WHAT[e.action] || (() => e.action.replaceAll("_", " ")))(e.detail || {}), e.subject ? el("bdi", {}, e.subject) : ""]),
    "Nothing yet.", { caption: "Activity" }));
}
