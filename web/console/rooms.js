// Rooms: who is in a room now on every node (phone callers included), removing someone (the
// removal reaches whichever node holds them), and dial-in PINs for the room and its people.

import { bdi, el, when } from "../sessionlog.js";
import { call, enc } from "./api.js";
import { $, action, fail, grid, present, repeatWhileShown, say } from "./ui.js";

let callsListed = true; // until the server says it has no calls list (phone off): not asked again

async function phoneCalls(room) {
  if (!callsListed) return null;
  try {
    const calls = await call("GET", `/api/v1/phone/calls?room=${enc(room)}`);
    return (calls.calls || []).filter((c) => !c.room || c.room === room);
  } catch (error) {
    if (error.status === 404 || error.status === 405) {
      callsListed = false;
      return null;
    }
    throw error;
  }
}

async function pins(room, people, shown) {
  const box = $("room-pins");
  const issued = el("div", { "aria-live": "polite" });
  let current = null;
  try {
    current = await call("GET", `/api/v1/rooms/${enc(room)}/pin`);
  } catch (error) {
    if (shown !== showing) return;
    if (error.code === "phone_disabled") {
      box.replaceChildren(el("h2", {}, "Dial-in"), el("p", { class: "muted" }, "Phone dial-in is not enabled on this server."));
      return;
    }
    if (error.status !== 404) throw error;
  }
  if (shown !== showing) return; // another room was asked for meanwhile
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

/** The rows of who is in `room` now, and a fingerprint of them (to redraw only on a change). */
async function whoIsIn(room) {
  const [now, calls] = await Promise.all([call("GET", `/api/v1/console/rooms/${enc(room)}`), phoneCalls(room)]);
  const people = now.participants.map((p) => ({ ...p, shown: p.name || p.identity }));
  const inRoom = new Set(people.map((p) => p.identity));
  for (const c of calls || []) {
    if (!inRoom.has(c.identity)) {
      people.push({ identity: c.identity, shown: c.name || c.caller || "caller", role: c.role || "phone",
        media_mode: "phone", presence: c.state === "ringing" ? "ringing" : "on a call", joined_at: c.since });
    }
  }
  const seen = JSON.stringify([now.pair?.status, now.partial,
    people.map((p) => [p.identity, p.shown, p.role, p.media_mode, p.presence, p.joined_at])]);
  return { now, calls, people, seen };
}

function drawWho(room, { now, people }) {
  const remove = (identity, name, onPhone) => action("Remove", async () => {
    if (!confirm(`Remove ${name} from the room? ${onPhone ? "Their call is hung up, and their" : "Their"} links and PIN for this room stop working.`)) return;
    const done = await call("DELETE", `/api/v1/rooms/${enc(room)}/participants/${enc(identity)}`);
    say(`${name} was removed${done.disconnected && onPhone ? " and their call hung up" : ""}; their links and PIN for this room stop working.`);
    await refresh(room);
  }, { "data-manager": true, "aria-label": `Remove ${name}` });
  const rows = people.map((p) => [bdi(p.shown), p.role, p.media_mode, p.presence, when(p.joined_at),
    p.identity ? remove(p.identity, p.shown, p.media_mode === "phone") : ""]);
  // Redrawn under the operator's hand: keep the keyboard on the same person's button.
  const focused = $("room-now").contains(document.activeElement) ? document.activeElement.getAttribute("aria-label") : null;
  $("room-now").replaceChildren(...present(
    el("h2", {}, now.pair ? `${now.pair.title} · ${now.pair.status === "active" ? "open" : "closed (pair ended)"}` : `Room ${room}`),
    now.partial ? el("p", { class: "log-badge" }, "Only this node's people: the cluster directory is unreachable.") : null,
    grid(["Who", "Role", "Media", "Presence", "Since", "Actions"], rows, "Nobody is in the room now.", { caption: "In the room now" }),
    // No calls list (phone off): the Dial-in section below says so; nothing to add here.
    el("p", { class: "muted" }, "This list updates by itself every few seconds.")));
  if (focused) $("room-now").querySelector(`[aria-label="${CSS.escape(focused)}"]`)?.focus();
  document.dispatchEvent(new Event("console:changed"));
}

// Who is in the room shown is looked at again every few seconds while the page is on screen
// (someone left, hung up or called in), and redrawn only when it changed.
const REFRESH_MS = 3000;
const watch = { room: null, seen: null, stop: () => {} };
let activePairs = []; // the suggestion list's pairs: a typed title finds its room

/** The room the field names: a room id as typed, or the room of the one active pair of that
 * title (case and spacing aside); several pairs of the same title must be picked from the list. */
function roomOf(typed) {
  const key = typed.replace(/\s+/g, " ").toLowerCase();
  if (activePairs.some((p) => p.room === typed)) return typed;
  const titled = activePairs.filter((p) => p.title.replace(/\s+/g, " ").toLowerCase() === key);
  if (titled.length > 1) throw new Error(`${titled.length} pairs are called "${typed}": pick one from the list (it fills in its room).`);
  return titled.length ? titled[0].room : typed;
}

async function refresh(room) {
  const found = await whoIsIn(room);
  if (watch.room !== room) return;
  if (found.seen !== watch.seen) drawWho(room, found);
  watch.seen = found.seen;
}

function follow(room) {
  watch.stop();
  watch.room = room;
  watch.stop = repeatWhileShown("rooms", REFRESH_MS, () => refresh(room));
}

let showing = 0; // which call of show() the page is for

export async function show({ arg } = {}) {
  // The room shown before stays in the page while the next one loads: emptied first, so its
  // Remove buttons cannot act on it, and a slower earlier load never replaces a later one.
  const shown = ++showing;
  watch.stop();
  watch.room = null;
  $("room-now").replaceChildren();
  $("room-pins").replaceChildren();
  const pairs = (await call("GET", "/api/v1/console/pairs")).pairs;
  if (shown !== showing) return;
  activePairs = pairs.filter((p) => p.status === "active");
  $("room-names").replaceChildren(...activePairs.map((p) => el("option", { value: p.room }, p.title)));
  if (!arg) return;
  $("room-name").value = arg;
  const found = await whoIsIn(arg);
  if (shown !== showing) return;
  watch.seen = found.seen;
  drawWho(arg, found);
  const pair = pairs.find((p) => p.room === arg);
  await pins(arg, pair ? pair.members : [], shown);
  if (shown !== showing) return;
  document.dispatchEvent(new Event("console:changed"));
  follow(arg);
}

export function init() {
  $("room-form").addEventListener("submit", (event) => {
    event.preventDefault();
    let room;
    try {
      room = roomOf($("room-name").value.trim());
    } catch (error) {
      fail(error);
      return;
    }
    const hash = `#rooms/${enc(room)}`;
    // The room already shown: no hashchange comes, so look again here (who left, who called in).
    if (location.hash === hash) show({ arg: room }).catch(fail);
    else location.hash = hash;
  });
}
