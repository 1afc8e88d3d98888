// Operators (admins only): who may sign in to the console and as what. Add one, change their
// role, deactivate or reactivate them, sign them out everywhere, and send them a sign-in
// link (mailed; with mail off the link is shown to copy, as Invite again does for
// participants). Every change is audited under the admin who made it (server/signin/api.py).

import { bdi, el } from "../sessionlog.js";
import { call } from "./api.js";
import { $, action, fail, grid, say } from "./ui.js";

const ROLES = { admin: "Admin", manager: "Programme manager", viewer: "Viewer" };
const path = (account, tail = "") => `/api/v1/accounts/operators/${account.id}${tail}`;
let me = null; // the signed-in admin's email: their own row cannot demote or deactivate them

function roleSelect(account) {
  const own = account.email === me;
  const select = el("select", { "aria-label": `Role of ${account.email}`, disabled: own, title: own ? "Another admin changes your role" : null },
    ...Object.entries(ROLES).map(([value, label]) => el("option", { value, selected: value === account.role }, label)));
  select.addEventListener("change", async () => {
    fail(null);
    select.disabled = true;
    try {
      await call("PATCH", path(account), { role: select.value });
      say(`${account.email} is now ${ROLES[select.value].toLowerCase()}.`);
      await show();
    } catch (error) {
      select.value = account.role;
      select.disabled = false;
      fail(error);
    }
  });
  return select;
}

/** A sign-in link: the server mails it when mail is on; otherwise (mail off) the admin is
 * shown it to copy, as the server returns it to admins only. */
function showLink(account, answer) {
  if (answer.mailed) {
    say(`A sign-in link is on its way to ${account.email}.`);
    $("operator-link").replaceChildren();
    return;
  }
  const id = `operator-link-${account.id}`;
  $("operator-link").replaceChildren(el("div", { class: "log-card" },
    el("label", { for: id }, `Copy to ${account.email}: their sign-in link (it works once)`),
    el("input", { id, readonly: true, value: answer.url || "", class: "console-copy" })));
  say(document.body.dataset.mail === "on" ? "The link was not mailed: copy it to its person."
    : "Mail is not configured here: copy the sign-in link to its person.");
  $(id).select();
}

function actions(account) {
  const who = account.email;
  return el("span", { class: "console-actions" },
    account.active ? action("Sign-in link", async () => {
      showLink(account, await call("POST", path(account, "/link"), { send: document.body.dataset.mail === "on" }));
    }, { "aria-label": `Sign-in link for ${who}` }) : null,
    action("Sign out everywhere", async () => {
      if (!confirm(`Sign ${who} out of every browser?`)) return;
      const { signed_out: ended } = await call("DELETE", path(account, "/sessions"));
      say(`${who} is signed out of ${ended} ${ended === 1 ? "browser" : "browsers"}.`);
    }, { "aria-label": `Sign out everywhere: ${who}` }),
    account.email === me ? null : action(account.active ? "Deactivate" : "Reactivate", async () => {
      if (account.active && !confirm(`Deactivate ${who}? They are signed out everywhere and cannot sign in.`)) return;
      await call("PATCH", path(account), { active: !account.active });
      say(account.active ? `${who} is deactivated and signed out everywhere.` : `${who} is active again: they can sign in.`);
      await show();
    }, { "aria-label": `${account.active ? "Deactivate" : "Reactivate"} ${who}` }));
}

export async function show() {
  const [{ accounts }, { label }] = await Promise.all([
    call("GET", "/api/v1/accounts/operators"), call("GET", "/api/v1/console/me")]);
  me = label;
  const rows = accounts.map((a) => [
    a.email === me ? el("span", {}, bdi(a.email), " (you)") : bdi(a.email), a.name ? bdi(a.name) : "–", roleSelect(a), a.active ? "active" : "deactivated", actions(a),
  ]);
  $("operator-list").replaceChildren(grid(["Email", "Name", "Role", "Status", "Actions"], rows,
    "No operator accounts yet: add one above.", { caption: "Operators" }));
}

export function init() {
  $("operator-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    fail(null);
    const body = { email: $("operator-email").value.trim(), name: $("operator-name").value.trim(), role: $("operator-role").value };
    try {
      const account = await call("POST", "/api/v1/accounts/operators", body);
      $("operator-form").reset();
      say(`Added ${account.email} as ${ROLES[account.role].toLowerCase()}. Send them a sign-in link from the list.`);
      await show();
    } catch (error) {
      fail(error);
    }
  });
}
