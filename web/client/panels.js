// The room's panels and dialogs beside the tiles: the side panel (chat or the people
// list, one at a time; on a phone a full-screen layer above the controls), the popover
// menus of the control bar, meeting info, and the keyboard shortcuts with their help.

const MODE_WORDS = { video: "video", audio: "audio only", text: "text chat", phone: "phone" };
// A narrow window, or a touch phone held sideways: wider than 820 px then (915x412), but
// no taller than a phone is wide. A tablet or a desktop window keeps the chat's column.
const PHONE = "(max-width: 820px), (pointer: coarse) and (max-height: 500px)";

/** Whether the room opens as on a phone: on the video, its chat a layer opened from the bar. */
export function isPhone() {
  return window.matchMedia(PHONE).matches;
}

/** Chat and People share the side of the stage; opening one closes the other. */
export class SidePanels {
  constructor({ onChatVisible }) {
    this.room = document.getElementById("room");
    this.onChatVisible = onChatVisible;
    this.buttons = { chat: document.getElementById("ctl-chat"), people: document.getElementById("ctl-people") };
    this.panels = { chat: document.getElementById("chat"), people: document.getElementById("people") };
    for (const [name, button] of Object.entries(this.buttons)) {
      button.addEventListener("click", () => this.toggle(name));
    }
    for (const close of document.querySelectorAll("[data-close]")) {
      close.addEventListener("click", () => this.show(null));
    }
    // The phone's full-screen layer sits between the top bar and the controls.
    const measure = () => {
      const root = document.documentElement.style;
      root.setProperty("--topbar-h", `${document.querySelector(".topbar").getBoundingClientRect().bottom}px`);
      root.setProperty("--controls-h", `${document.querySelector(".controls").offsetHeight}px`);
    };
    new ResizeObserver(measure).observe(document.querySelector(".controls"));
    window.addEventListener("resize", measure);
    this.measure = measure;
  }

  get open() {
    return Object.keys(this.panels).find((name) => !this.panels[name].hidden) || null;
  }

  toggle(name) {
    this.show(this.open === name ? null : name);
  }

  show(name) {
    const was = this.open;
    this.measure();
    for (const [key, panel] of Object.entries(this.panels)) {
      panel.hidden = key !== name;
      this.buttons[key].setAttribute("aria-expanded", String(key === name));
    }
    this.room.classList.toggle("chat-closed", !name);
    this.room.dataset.panel = name || "none";
    this.onChatVisible(name === "chat");
    if (name === "chat") document.getElementById("chat-input").focus({ preventScroll: true });
    else if (name === "people") document.querySelector("#people .panel-close").focus({ preventScroll: true });
    else if (was) this.buttons[was].focus({ preventScroll: true });
  }
}

/** A control-bar button that opens a small menu above it (React, More). */
export class Popover {
  constructor(buttonId, menuId) {
    this.button = document.getElementById(buttonId);
    this.menu = document.getElementById(menuId);
    this.button.addEventListener("click", () => this.set(this.menu.hidden));
    this.menu.addEventListener("click", (event) => {
      if (event.target.closest("button") && !event.target.closest("#ctl-hand, [data-reaction]")) this.set(false);
    });
    this.menu.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        this.set(false);
        this.button.focus();
      }
    });
    document.addEventListener("pointerdown", (event) => {
      if (!this.menu.hidden && !this.menu.contains(event.target) && !this.button.contains(event.target)) this.set(false);
    });
  }

  set(open) {
    this.menu.hidden = !open;
    this.button.setAttribute("aria-expanded", String(open));
    if (open) {
      const box = this.button.getBoundingClientRect();
      const left = Math.max(8, Math.min(box.left + box.width / 2 - this.menu.offsetWidth / 2,
        window.innerWidth - this.menu.offsetWidth - 8));
      this.menu.style.left = `${left}px`;
      this.menu.querySelector("button")?.focus();
    }
  }
}

/** Everyone in the room, with how they take part, a raised hand first. */
export function renderPeople(list, people, me, hands) {
  const order = [...people.values()].sort((a, b) => (hands.has(b.identity) - hands.has(a.identity))
    || (a.identity === me ? -1 : b.identity === me ? 1 : 0));
  list.replaceChildren(...order.map((p) => {
    const li = document.createElement("li");
    li.className = "person";
    li.dataset.identity = p.identity;
    const name = document.createElement("span");
    name.className = "person-name";
    const bdi = document.createElement("bdi");
    bdi.textContent = p.name;
    name.append(bdi, p.identity === me ? " (you)" : "");
    const detail = document.createElement("span");
    detail.className = "person-detail";
    const away = p.presence === "away" ? " · away" : p.presence === "reconnecting" ? " · reconnecting" : "";
    detail.textContent = `${p.role} · ${MODE_WORDS[p.media_mode] || "text chat"}${away}`;
    li.append(name, detail);
    if (hands.has(p.identity)) {
      const hand = document.createElement("span");
      hand.className = "person-hand";
      hand.textContent = "✋ Hand raised";
      li.append(hand);
    }
    return li;
  }));
  document.getElementById("people-count").textContent = String(people.size);
}

/** Meeting info: the meeting's name, its link and the dial-in number with PIN. */
export class MeetingInfo {
  constructor() {
    this.dialog = document.getElementById("info-dialog");
    this.link = `${location.origin}/join`;
    document.getElementById("info-copy").addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(this.link);
        document.getElementById("info-copy").textContent = "Copied";
      } catch {
        document.getElementById("info-copy").textContent = "Select the link to copy it";
      }
    });
  }

  /** @param {{room: string, dialin: {number: string, pin?: string}|null}} info */
  update({ room, dialin }) {
    if (room) document.getElementById("info-room").textContent = room;
    document.getElementById("info-link").textContent = this.link;
    if (dialin !== undefined) {
      document.getElementById("info-phone").textContent = dialin
        ? `Call ${dialin.number}${dialin.pin ? ` and enter PIN ${dialin.pin} followed by #` : ""}.`
        : "No dial-in number for this meeting.";
    }
  }

  open() {
    if (!this.dialog.open) this.dialog.showModal();
  }
}

/**
 * Single-key shortcuts, as in Jitsi and Meet, only while the person is not typing:
 * `actions` maps a key to [what it does, handler].
 */
export class Shortcuts {
  constructor(actions) {
    this.actions = actions;
    document.getElementById("help-rows").replaceChildren(...Object.entries(actions).map(([key, [words]]) => {
      const row = document.createElement("tr");
      const k = document.createElement("td");
      const kbd = document.createElement("kbd");
      kbd.textContent = key === "?" ? "?" : key.toUpperCase();
      k.append(kbd);
      const d = document.createElement("td");
      d.textContent = words;
      row.append(k, d);
      return row;
    }));
    document.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
      if (document.getElementById("room").hidden) return;
      const target = event.target;
      if (target.closest?.("input, textarea, select, [contenteditable], dialog[open]")) return;
      const action = this.actions[event.key.length === 1 ? event.key.toLowerCase() : event.key];
      if (!action) return;
      event.preventDefault();
      action[1]();
    });
  }
}
