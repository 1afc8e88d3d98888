// Activity: who did what, from the audit log (GET /api/v1/privacy/audit), newest first, as
// sentences ("Ana (admin) deactivated Bo"). The log keeps codes (account_deactivate) and
// addresses; this page names people from the accounts and profiles an admin may read, and
// never shows a code: an action this page does not know reads "made a change (…)" in words.

import { bdi, el, when } from "../sessionlog.js";
import { call } from "./api.js";
import { $, plural } from "./ui.js";

const ROLE = { admin: "admin", manager: "programme manager", viewer: "viewer", participant: "participant" };
// A name or title inside a sentence is marked (FSI … PDI, its own marks taken out) and
// shown as its own <bdi>: a U+202E in it cannot reverse the rest of the sentence.
const ISOLATE = /\u2068([^\u2068\u2069]*)\u2069/;
const named = (text) => `\u2068${String(text).replaceAll(/[\u2066-\u2069]/g, "")}\u2069`;
const isolated = (text) => text.split(ISOLATE).map((part, i) => (i % 2 ? bdi(part) : part));

/** What the entry did, as the words after the actor's name; `whom` is the subject's name. */
const WHAT = {
  console_import: (d) => `imported ${plural(d.imported ?? 0, "person", "people")}${d.errors ? ` (${plural(d.errors, "row")} to fix)` : ""}`,
  console_edit: (d, whom) => `edited ${whom}'s profile`,
  console_deactivate: (d, whom) => `deactivated ${whom}`,
  console_reactivate: (d, whom) => `reactivated ${whom}`,
  criteria_update: (d) => `saved the matching criteria${d.criteria ? ` (${plural(d.criteria, "criterion", "criteria")})` : ""}`,
  matching_run: (d) => `ran matching${d.fixed ? ` with ${plural(d.fixed, "fixed pair")}` : ""}`,
  matching_publish: (d) => `published ${plural(d.pairs ?? 0, "pair")}`,
  pair_rematch: (d, whom) => `rematched ${whom} (its room closed, the mentee matched again)`,
  pair_end: (d, whom) => `ended the pair ${whom} (its room closed)`,
  pair_invite: (d, whom) => `invited the ${plural(d.members ?? 0, "member")} of ${whom} again`,
  invite: (d, whom) => d.mailed ? `mailed ${whom} an invitation` : `made an invitation link for ${whom}`,
  signin_link: (d, whom) => d.mailed ? `mailed ${whom} a sign-in link` : `made a sign-in link for ${whom}`,
  account_create: (d, whom) => `added ${whom}${d.role ? ` as ${ROLE[d.role] || d.role}` : ""}`,
  account_update: (d, whom) => accountUpdate(d, whom),
  account_deactivate: (d, whom) => `deactivated ${whom}`,
  sessions_revoke: (d, whom) => `signed ${whom} out everywhere${d.sessions_ended ? ` (${plural(d.sessions_ended, "session")})` : ""}`,
  token_issue: (d, whom) => `issued a join link for ${whom}${d.room ? ` to room ${named(d.room)}` : ""}`,
  participant_remove: (d, whom) => `removed ${whom} from room ${d.room ? named(d.room) : ""}`.trim(),
  webhook_create: () => "added a webhook",
  webhook_delete: () => "deleted a webhook",
  erase: (d, whom) => `erased ${whom}'s data`,
  anonymise: (d, whom) => `anonymised ${whom}'s data`,
  retention: (d) => `deleted an ended pair's chat older than ${plural(d.days ?? 0, "day")} (retention)`,
};

function accountUpdate(d, whom) {
  const parts = [];
  if (d.active === false) parts.push(`deactivated ${whom}`);
  if (d.active === true) parts.push(`reactivated ${whom}`);
  if (d.role) parts.push(`made ${whom} ${ROLE[d.role] === "admin" ? "an admin" : `a ${ROLE[d.role] || d.role}`}`);
  if (d.email) parts.push(`changed ${whom}'s email`);
  if (d.name) parts.push(`renamed ${whom}`);
  return parts.length ? parts.join(" and ") : `changed ${whom}'s account`;
}

/** Names for the addresses, identities and pair ids the log keeps (an admin reads them all). */
async function directory() {
  const people = new Map();
  const [operators, participants, pairs] = await Promise.all([
    call("GET", "/api/v1/accounts/operators").then((r) => r.accounts, () => []),
    call("GET", "/api/v1/accounts/participants").then((r) => r.accounts, () => []),
    call("GET", "/api/v1/console/pairs").then((r) => r.pairs, () => []),
  ]);
  for (const a of [...operators, ...participants]) {
    const who = { name: a.name || a.email, role: a.role };
    people.set(a.email, who);
    if (a.identity) people.set(a.identity, who);
  }
  for (const p of pairs) people.set(p.id, { name: p.title, role: "pair" });
  return people;
}

/** The one who acted: "Ana (admin)", "The admin key", "Retention". */
function actorName(actor, people) {
  if (actor === "admin-key" || actor === "operator") return "Someone with the admin key";
  if (actor === "retention") return "The retention job";
  const known = people.get(actor);
  if (known) return `${named(known.name)} (${ROLE[known.role] || known.role})`;
  const [role, identity] = actor.split(":");
  if (identity && ROLE[role] === undefined) return named(actor);
  return identity ? `${named(people.get(identity)?.name || identity)} (${named(role)})` : named(actor);
}

export function sentence(entry, people) {
  const whom = entry.subject ? named(people.get(entry.subject)?.name || entry.subject) : "someone";
  const what = WHAT[entry.action];
  const words = what ? what(entry.detail || {}, whom) : `made a change (${entry.action.replaceAll(/[_.]/g, " ")})`;
  return `${actorName(entry.actor, people)} ${words}.`;
}

export async function show() {
  const [{ entries }, people] = await Promise.all([call("GET", "/api/v1/privacy/audit"), directory()]);
  // A list, not a table: a sentence wraps on a phone where a table's cell would scroll.
  $("activity-feed").replaceChildren(entries.length
    ? el("ol", { class: "log-list console-activity", "aria-label": "Activity, newest first" },
      ...entries.map((e) => el("li", {},
        el("time", { class: "muted", datetime: new Date(e.ts * 1000).toISOString() }, when(e.ts)),
        el("span", { dir: "auto" }, ...isolated(sentence(e, people))))))
    : el("p", { class: "muted" }, "Nothing yet."));
}
