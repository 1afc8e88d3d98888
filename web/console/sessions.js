// My sessions: the browsers the signed-in operator is signed in on (GET /api/v1/signin/sessions),
// to end one (a lost laptop) or all of them. Only a session has sessions: the admin key
// typed into the console has none, so console.js does not offer this page to it.

import { bdi, el, when } from "../sessionlog.js";
import { deviceName } from "../session.js";
import { call } from "./api.js";
import { $, action, fail, grid, say } from "./ui.js";

/** "Firefox on Linux" is more than most people read of a user agent; the whole string is its title. */
function device(agent) {
  return el("span", { title: agent || "" }, bdi(deviceName(agent)));
}

export async function show() {
  const { sessions } = await call("GET", "/api/v1/signin/sessions");
  const rows = sessions.map((s) => [
    device(s.user_agent), s.address || "–", when(s.created_at), when(s.last_seen_at),
    s.current ? "this browser" : action("Sign out", async () => {
      await call("DELETE", `/api/v1/signin/sessions/${s.id}`);
      say("That browser is signed out.");
      await show();
    }, { "aria-label": `Sign out the session from ${s.address || "an unknown address"} last seen ${when(s.last_seen_at)}`, "data-session": s.id }),
  ]);
  $("session-list").replaceChildren(grid(["Device", "Address", "Signed in", "Last seen", "Actions"], rows,
    "No sessions.", { caption: "My sessions" }));
}

export function init() {
  $("signout-everywhere").addEventListener("click", async () => {
    fail(null);
    try {
      await call("POST", "/api/v1/signin/signout-everywhere");
    } catch (error) {
      fail(error);
      return;
    }
    location.hash = "";
    location.reload();
  });
}
