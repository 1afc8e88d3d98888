// Rooms: who is in a room now on every node (phone callers included), removing someone (the
// removal reaches whichever node holds them), and dial-in PINs for the room and its people.

import { bdi, el, when } from "../sessionlog.js";
import { call, enc } from "./api.js";
import { $, action, fail, grid, present, say } from "./ui.js";

async function phoneCalls(room) {
  try {
    const calls = await call("GET", `/api/v1/phone/calls?room=${enc(room)}`);
    return (calls.calls || []).filter((c) => !c.room || c.room === room);
  } catch (error) {
    if (error.status === 404 || error.status === 405) return null; // no phone calls list here
    throw error;
  }
}

async function pins(room, people) {
  const box = $("room-pins");
  const issued = el("div", { "aria-live": "polite" });
  let current = null;
  try {
    current = await call("GET", `/api/v1/rooms/${enc(room)}/pin`);
  } catch (error) {
    if (error.code === "phone_disabled") {
      box.replaceChildren(el("h2", {}, "Dial-in"), el("p", { class: "muted" }, "Phone dial-in is not enabled on this server."));
      return;
    }
    if (error.status !== 404) throw error;
  }
  const show = (pin) => issued.replaceChildren(el("p", {}, `Room PIN ${pin.pin}`, pin.dial_in_number ? ` · call ${pin.dial_in_number}` : ""));
  if (current) show(current);
  const personal = people.map((m) => action(`Personal PIN for ${m.name}`, async () => {
    const pin = await call("POST", `/api/v1/rooms/${enc(room)}/participant-pins`, { identity: m.identity, name: m.name, role: m.role });
    issued.append(el("p", {}, `${m.name}: PIN ${pin.pin}`));
    say(`Personal PIN issued for ${m.name}.`);
  }, { "data-manager": true }));
  box.replaceChildren(el("h2", {}, "Dial-in"), issued,
    el("div", { class: "console-actions" },
      action(current ? "Show the room PIN" : "Issue the room PIN", async () => {
        show(await call("POST", `/api/v1/rooms/${enc(room)}/pin`));
        say("Room PIN ready.");
      }, { "data-manager": true }), ...personal));
}

export async function show({ arg } = {}) {
  const pairs = (await call("GET", "/api/v1/console/pairs")).pairs;
  $("room-names").replaceChildren(...pairs.filter((p) => p.status === "active").map((p) => el("option", { value: p.room }, p.title)));
  if (!arg) {
    $("room-now").replaceChildren();
    $("room-pins").replaceChildren();
    return;
  }
  $("room-name").value = arg;
  const [now, calls] = await Promise.all([call("GET", `/api/v1/console/rooms/${enc(arg)}`), phoneCalls(arg)]);
  const remove = (identity, name) => action("Remove", async () => {
    const done = await call("DELETE", `/api/v1/rooms/${enc(arg)}/participants/${enc(identity)}`);
    const phone = done.disconnected && now.participants.some((p) => p.identity === identity && p.media_mode === "phone");
    say(`${name} was removed${phone ? " and their call hung up" : ""}; their links and PIN for this room stop working.`);
    await show({ arg });
  }, { "data-manager": true, "aria-label": `Remove ${name}` });
  const rows = now.participants.map((p) => [bdi(p.name), p.role, p.media_mode, p.presence, when(p.joined_at), remove(p.identity, p.name || p.identity)]);
  const inRoom = new Set(now.participants.map((p) => p.identity));
  for (const c of calls || []) {
    if (!inRoom.has(c.identity)) rows.push([bdi(c.name || c.caller || "caller"), c.role || "phone", "phone", "on a call", when(c.started_at), c.identity ? remove(c.identity, c.name || c.caller) : ""]);
  }
  $("room-now").replaceChildren(...present(
    el("h2", {}, now.pair ? `${now.pair.title} · ${now.pair.status === "active" ? "open" : "closed (pair ended)"}` : `Room ${arg}`),
    now.partial ? el("p", { class: "log-badge" }, "Only this node's people: the cluster directory is unreachable.") : null,
    grid(["Who", "Role", "Media", "Presence", "Since", "Actions"], rows, "Nobody is in the room now.", { caption: "In the room now" }),
    calls === null ? el("p", { class: "muted" }, "Phone callers show here once the server lists calls.") : null));
  const pair = pairs.find((p) => p.room === arg);
  await pins(arg, pair ? pair.members : []);
  document.dispatchEvent(new Event("console:changed"));
}

export function init() {
  $("room-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const room = $("room-name").value.trim();
    const hash = `#rooms/${enc(room)}`;
    // The room already shown: no hashchange comes, so look again here (who left, who called in).
    if (location.hash === hash) show({ arg: room }).catch(fail);
    else location.hash = hash;
  });
}
