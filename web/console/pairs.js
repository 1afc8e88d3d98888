// Pairs: status, last meeting, last message, flags; one pair's page with its sessions and the
// actions (invite again, end, rematch, remove a member). Ending or rematching closes the room.

import { bdi, el, minutes, when } from "../sessionlog.js";
import { call, enc } from "./api.js";
import { $, action, ago, grid, plural, present, say } from "./ui.js";

let all = [];
let showing = 0; // which call of show() the page is for

function names(pair) {
  return pair.members.map((m) => `${m.name} (${m.role})`).join(", ");
}

function statusText(pair) {
  return pair.status === "active" ? "active" : "ended (room closed)";
}

function list() {
  const showEnded = $("pairs-ended").checked;
  const shown = all.filter((p) => showEnded || p.status === "active");
  $("pair-list").replaceChildren(grid(["Pair", "Status", "Last meeting", "Last message", "Flag"],
    shown.map((p) => [
      el("a", { href: `#pair/${enc(p.id)}` }, bdi(p.title)),
      statusText(p), ago(p.last_meeting), ago(p.last_message),
      p.flagged ? el("span", { class: "log-badge" }, p.flag_reason || "flagged") : el("span", { class: "muted" }, "none"),
    ]),
    showEnded ? "No pairs yet: publish a matching run." : "No active pairs.", { caption: "Pairs" }));
}

const INVITED = {
  mailed: "a sign-in link to their page is on its way by mail",
  mail_off: "not sent: mail is not configured here. An admin can copy their sign-in link",
  no_account: "no sign-in account: import them with an email",
  inactive: "deactivated: reactivate them first",
};

/** Who was invited and how (after publishing, or Invite again). A link to copy comes only to an admin, and only with mail off:
 * the server never hands one to anyone else (it would sign them in as the person). */
export function invitationCard(invitations, prefix = "link") {
  const mail = document.body.dataset.mail === "on";
  return el("div", { class: "log-card" },
    el("h2", {}, mail ? "Invitations sent" : "Sign-in links"),
    ...invitations.map((i) => i.url
      ? el("div", { class: "console-field" },
        el("label", { for: `${prefix}-${i.identity}` }, `Copy to ${i.name}: their sign-in link (it works once)`),
        el("input", { id: `${prefix}-${i.identity}`, value: i.url, readonly: true }))
      : el("p", { class: "console-invited", "data-identity": i.identity }, bdi(i.name), `: ${INVITED[i.status] || i.status}`)));
}

async function detail(pairId, shown) {
  const pair = all.find((p) => p.id === pairId);
  const box = $("pair-detail");
  if (!pair) {
    box.replaceChildren(el("p", { class: "error" }, "No such pair."));
    box.hidden = false;
    return;
  }
  const sessions = await call("GET", `/api/v1/pairs/${enc(pair.id)}/sessions`);
  if (shown !== showing) return; // another pair was asked for while this one loaded
  const open = pair.status === "active";
  const member = el("select", { id: "remove-who", "aria-label": "Member to remove" },
    ...pair.members.map((m) => el("option", { value: m.identity }, `${m.name} (${m.role})`)));
  box.replaceChildren(...present(
    el("h2", {}, bdi(pair.title)),
    el("p", {}, `Status: ${statusText(pair)} · ${plural(pair.meetings, "meeting")} · last meeting ${ago(pair.last_meeting)} · last message ${ago(pair.last_message)}`),
    el("p", {}, "Members: ", bdi(names(pair))),
    pair.flagged ? el("p", { class: "log-badge" }, `Flagged: ${pair.flag_reason || ""}`) : null,
    el("p", {}, el("a", { href: `#rooms/${enc(pair.room)}` }, "Who is in their room now, and dial-in PINs")),
    el("div", { class: "console-actions" },
      action("Invite again", async () => {
        const result = await call("POST", `/api/v1/console/pairs/${enc(pair.id)}/invitations`);
        $("invitations").replaceChildren(invitationCard(result.invitations));
        const copy = result.invitations.some((i) => i.url);
        say(result.mail ? "Invitations mailed."
          : copy ? "Mail is not configured here: copy each sign-in link to its person."
            : "Mail is not configured here: an admin can copy the sign-in links.");
      }, { "data-manager": true, disabled: !open }),
      action("End pair", async () => {
        if (!confirm(`End ${pair.title}? Their room closes; the log stays.`)) return;
        await call("POST", `/api/v1/console/pairs/${enc(pair.id)}/end`);
        say(`${pair.title} ended: the room is closed.`);
        await show({ pair: pair.id });
      }, { "data-manager": true, disabled: !open }),
      action("Rematch", async () => {
        if (!confirm(`Rematch ${pair.title}? Their room closes and the mentee is matched again.`)) return;
        const result = await call("POST", `/api/v1/pairs/${enc(pair.id)}/rematch`);
        say("Rematching: the new run is under Matching.");
        location.hash = `#matching/${result.run.id}`;
      }, { "data-manager": true, disabled: !open })),
    el("div", { class: "log-inline" },
      el("label", { for: "remove-who" }, "Remove from the room"), member,
      action("Remove", async () => {
        const who = pair.members.find((m) => m.identity === member.value);
        if (!confirm(`Remove ${who.name} from the room? Their links and dial-in PIN for it stop working.`)) return;
        await call("DELETE", `/api/v1/rooms/${enc(pair.room)}/participants/${enc(who.identity)}`);
        say(`${who.name} was removed from the room; their links stop working.`);
      }, { "data-manager": true })),
    el("h3", {}, "Sessions"),
    grid(["Started", "Length", "Who"], sessions.sessions.map((s) => [when(s.started_at), minutes(s.duration_seconds), (s.participants || []).map((id) => pair.members.find((m) => m.identity === id)?.name || id).join(", ")]),
      "No meetings yet."),
  ));
  box.hidden = false;
  document.dispatchEvent(new Event("console:changed"));
}

export async function show({ pair } = {}) {
  // The last pair shown stays in the page while the next one loads: emptied first, so
  // its buttons cannot act on it, and a slower earlier load never replaces a later one.
  const shown = ++showing;
  $("pair-detail").hidden = true;
  $("pair-detail").replaceChildren();
  $("invitations").replaceChildren();
  const pairs = (await call("GET", "/api/v1/console/pairs")).pairs;
  if (shown !== showing) return;
  all = pairs;
  list();
  if (pair) {
    await detail(pair, shown);
    if (shown === showing) $("pair-detail").focus();
  }
}

export function init() {
  $("pairs-ended").addEventListener("change", list);
}
