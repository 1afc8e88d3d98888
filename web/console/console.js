// The programme console: one page per task, chosen by the address's #fragment
// (#participants, #criteria, #matching, #pairs, #pair/<id>, #rooms, #rooms/<room>, #phone, #activity,
// #reader, #operators, #sessions). Each role sees the pages its routes open (server/api/access.py): a programme
// manager the cohort and its pairs, a viewer health and exports, an admin everything
// (Operators included). "My sessions" is for whoever signed in with a session: the admin key
// has none.

import { KEY, call, whenSignedOut } from "./api.js";
import { $, fail, say } from "./ui.js";
import * as participants from "./participants.js";
import * as criteria from "./criteria.js";
import * as matching from "./matching.js";
import * as pairs from "./pairs.js";
import * as rooms from "./rooms.js";
import * as phone from "./phone.js";
import * as activity from "./activity.js";
import * as operators from "./operators.js";
import * as sessions from "./sessions.js";

const reader = { show() {} }; // static: links to health and the exports
const PAGES = { participants, criteria, matching, pairs, rooms, phone, activity, reader, operators, sessions };
const RUNS_COHORT = ["admin", "manager"];
const EVERYONE = ["admin", "manager", "viewer"];
const ROLES_FOR = {
  participants: RUNS_COHORT, criteria: RUNS_COHORT, matching: RUNS_COHORT, pairs: RUNS_COHORT,
  rooms: RUNS_COHORT, phone: EVERYONE, activity: ["admin"], reader: EVERYONE, operators: ["admin"], sessions: EVERYONE,
};
const keyed = () => Boolean(sessionStorage.getItem(KEY));
const allowed = (page) => (ROLES_FOR[page] || []).includes(role) && !(page === "sessions" && keyed());
const started = new Set();
let role = null;

function route() {
  const [name, ...rest] = location.hash.slice(1).split("/");
  const asked = name === "pair" ? "pairs" : name;
  const page = allowed(asked) ? asked : (allowed("participants") ? "participants" : "reader");
  for (const id of Object.keys(PAGES)) $(id).hidden = id !== page;
  for (const link of document.querySelectorAll("#nav a, #my-sessions")) {
    const current = link.getAttribute("href") === `#${page}`;
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  fail(null);
  say("");
  const module = PAGES[page];
  if (!started.has(page)) {
    started.add(page);
    module.init?.();
  }
  const arg = rest.map(decodeURIComponent).join("/");
  Promise.resolve(module.show(name === "pair" ? { pair: arg } : { arg })).catch(fail);
}

/** Each role sees its own pages; only managers and admins change things. */
function applyRole() {
  document.body.dataset.role = role || "";
  for (const link of document.querySelectorAll("#nav a[data-page]")) link.hidden = !allowed(link.dataset.page);
  $("my-sessions").hidden = !allowed("sessions");
  if (role !== "viewer") return;
  for (const button of document.querySelectorAll("[data-manager]")) {
    button.disabled = true;
    button.title = "Viewers cannot change the programme";
  }
}

function signedOut(why) {
  fail(null);
  $("signin-why").textContent = why || "Sign in with your operator account, or use the admin key.";
  $("signin-form").hidden = false;
  $("nav").hidden = true;
  $("sign-out").hidden = true;
  $("my-sessions").hidden = true;
  for (const id of Object.keys(PAGES)) $(id).hidden = true;
}

async function open() {
  const me = await call("GET", "/api/v1/console/me");
  role = me.role;
  $("who").textContent = `${me.label} · ${me.role}`;
  document.body.dataset.mail = me.mail ? "on" : "off";
  $("signin-form").hidden = true;
  $("nav").hidden = false;
  $("sign-out").hidden = false;
  applyRole();
  route();
}

function start() {
  whenSignedOut((message) => {
    const had = sessionStorage.getItem(KEY);
    sessionStorage.removeItem(KEY);
    signedOut(had ? `Not signed in: ${message}` : null);
  });
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("admin-key").value.trim());
    $("admin-key").value = "";
    try {
      await open();
    } catch (error) {
      $("signin-error").textContent = error.message;
    }
  });
  $("sign-out").addEventListener("click", async () => {
    const key = sessionStorage.getItem(KEY);
    sessionStorage.removeItem(KEY);
    if (!key) await call("POST", "/api/v1/signin/signout").catch(() => {}); // the session's cookie
    location.hash = "";
    location.reload();
  });
  window.addEventListener("hashchange", () => { if (!$("nav").hidden) route(); });
  document.addEventListener("console:changed", applyRole);
  // A session cookie (once operators sign in) or a key from earlier in this tab opens it.
  open().catch((error) => { if (error.status !== 401) signedOut(error.message); });
}

start();
