// The chat panel: history, messages pending until acked (kept in sessionStorage so a
// reload or a dropped socket never loses them), typing, read markers and unread count.

import { notice } from "./banner.js";

const TYPING_IDLE_MS = 3000;
const TYPING_STALE_MS = 8000;
const RETRY_MS = 1500;
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

/** Messages written but not yet acknowledged by the server, in the order they were written. */
class PendingStore {
  constructor(key) {
    this.key = key;
    try {
      this.items = JSON.parse(sessionStorage.getItem(key) || "[]");
    } catch {
      this.items = [];
    }
  }

  add(item) {
    this.items.push(item);
    this.#save();
  }

  remove(clientId) {
    this.items = this.items.filter((item) => item.client_id !== clientId);
    this.#save();
  }

  has(clientId) {
    return this.items.some((item) => item.client_id === clientId);
  }

  #save() {
    sessionStorage.setItem(this.key, JSON.stringify(this.items));
  }
}

export class Chat {
  /**
   * @param {object} o
   * @param {import("./socket.js").RoomSocket} o.socket
   * @param {string} o.me  my identity
   * @param {(identity: string) => string} o.nameOf
   * @param {(text: string) => void} o.announce  screen-reader announcement
   * @param {(count: number) => void} o.onUnread
   */
  constructor({ socket, me, room, nameOf, announce, onUnread }) {
    this.socket = socket;
    this.me = me;
    this.nameOf = nameOf;
    this.announce = announce;
    this.onUnread = onUnread;
    this.pending = new PendingStore(`pairwise.pending.${room}.${me}`);
    this.messages = new Map(); // id → message
    this.elements = new Map(); // id or client_id → <li>
    this.reads = {};
    this.typingPeople = new Map(); // identity → timer
    this.visible = true;
    this.flushing = false;
    this.canWrite = true;

    this.log = document.getElementById("chat-log");
    this.scroller = document.getElementById("chat-scroll") || this.log;
    this.names = new Map(); // identity → the name last seen for them (people who left too)
    this.form = document.getElementById("chat-form");
    this.input = document.getElementById("chat-input");
    this.typingLine = document.getElementById("chat-typing");
    this.earlier = document.getElementById("chat-earlier");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send(this.input.value);
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send(this.input.value);
      }
    });
    this.input.addEventListener("input", () => this.#typing(this.input.value.trim() !== ""));
    this.earlier.addEventListener("click", () => this.loadEarlier());
    document.addEventListener("visibilitychange", () => this.markRead());

    socket.on("chat", (message) => this.#received(message, true));
    socket.on("typing", ({ identity, typing }) => this.#othersTyping(identity, typing));
    socket.on("read", ({ identity, up_to }) => {
      this.reads[identity] = Math.max(this.reads[identity] || 0, up_to);
      this.#refreshStatuses();
      this.#countUnread();
    });
    for (const item of this.pending.items) this.#renderPending(item);
  }

  /** The join ack (first join or a rejoin after reconnecting): merge history, resend. */
  load({ history, historyHasMore, reads, canWrite, chatPrivate = false }) {
    this.#showPrivate(chatPrivate);
    this.canWrite = canWrite;
    this.input.disabled = !canWrite;
    this.form.querySelector("button").disabled = !canWrite;
    this.input.placeholder = canWrite ? "Write a message" : "Observers read along in this room";
    this.reads = { ...reads };
    const first = !this.loaded;
    for (const message of history) this.#received(message, false);
    if (!this.loaded) this.earlier.hidden = !historyHasMore;
    this.loaded = true;
    this.#refreshStatuses();
    this.#countUnread();
    this.markRead();
    this.flush();
    // A meeting opens at the newest message, like every chat app (not at the oldest).
    if (first) this.#scrollToEnd();
  }

  /** The name to show for someone: the room's, else the last one their messages carried,
   * never their login identity. */
  nameFor(identity) {
    const known = this.nameOf(identity);
    if (known && known !== identity) return known;
    return this.names.get(identity) || "Someone who left";
  }

  /** The operator's side (an observer) in a program whose chat is private: say why the
   * panel stays empty, instead of an empty log that looks broken. */
  #showPrivate(chatPrivate) {
    let note = this.log.parentElement.querySelector(".chat-private");
    if (chatPrivate && !note) {
      note = document.createElement("p");
      note.className = "chat-private";
      note.textContent =
        "This pair's chat is private: the programme does not let its operators read it.";
      this.log.before(note);
    }
    if (note) note.hidden = !chatPrivate;
    if (chatPrivate) this.earlier.hidden = true;
  }

  send(raw) {
    const text = raw.trim();
    if (!text || !this.canWrite) return;
    const item = { client_id: crypto.randomUUID(), text, ts: Date.now() / 1000 };
    this.pending.add(item);
    this.#renderPending(item);
    this.input.value = "";
    this.#typing(false);
    this.flush();
  }

  /** Send every pending message, oldest first, each with its own client_id. */
  async flush() {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (const item of [...this.pending.items]) {
        if (!this.pending.has(item.client_id)) continue;
        try {
          const ack = await this.socket.request("chat", { text: item.text, client_id: item.client_id });
          this.#delivered(item, ack);
        } catch (err) {
          if (err.code === "offline" || err.code === "not_joined") break; // resent after rejoin
          if (err.code === "timeout" || err.code === "rate_limited" || err.code === "internal") {
            this.#setStatus(item.client_id, "Not sent yet, retrying…", "waiting");
            setTimeout(() => this.flush(), RETRY_MS);
            break;
          }
          this.#failed(item, err.message);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /** The socket is down: pending messages say so instead of "sending". */
  offline() {
    for (const item of this.pending.items) {
      this.#setStatus(item.client_id, "Waiting for connection", "waiting");
    }
  }

  setVisible(visible) {
    this.visible = visible;
    this.markRead();
  }

  markRead() {
    if (!this.visible || document.visibilityState !== "visible" || !this.socket.connected) return;
    const last = Math.max(0, ...this.messages.keys());
    if (last > (this.reads[this.me] || 0)) {
      this.reads[this.me] = last;
      this.#countUnread();
      this.socket.request("read", { up_to: last }).catch(() => {});
    }
  }

  async loadEarlier() {
    const before = Math.min(...this.messages.keys());
    if (!Number.isFinite(before)) return;
    try {
      const page = await this.socket.request("history", { before }); // a page of the server's size
      for (const message of page.messages) this.#received(message, false);
      this.earlier.hidden = !page.has_more;
      this.#refreshStatuses();
    } catch (err) {
      notice(`Could not load earlier messages: ${err.message}`);
    }
  }

  #received(message, live) {
    if (this.pending.has(message.client_id) && message.from.identity === this.me) {
      this.pending.remove(message.client_id);
      this.elements.get(message.client_id)?.remove();
      this.elements.delete(message.client_id);
    }
    if (this.messages.has(message.id)) return;
    this.messages.set(message.id, message);
    if (message.from.name) this.names.set(message.from.identity, message.from.name);
    const li = this.#messageElement(message.from.identity, message.from.name, message.text, message.ts);
    li.dataset.id = String(message.id);
    this.elements.set(message.id, li);
    this.#place(li, message.id);
    if (message.from.identity === this.me) {
      this.#setStatus(message.id, this.#statusText(message.id), "sent");
    } else if (live) {
      this.#othersTyping(message.from.identity, false);
      this.announce(`${message.from.name}: ${message.text}`);
    }
    if (live) this.#scrollToEnd();
    this.#countUnread();
    if (live) this.markRead();
  }

  #delivered(item, ack) {
    if (!this.pending.has(item.client_id)) return; // the chat event came first
    this.#received({
      id: ack.id, ts: ack.ts, text: item.text, client_id: item.client_id,
      from: { identity: this.me, name: this.nameOf(this.me) },
    }, false);
  }

  #failed(item, reason) {
    this.#setStatus(item.client_id, `Not sent: ${reason}`, "failed");
    const li = this.elements.get(item.client_id);
    if (!li || li.querySelector("button")) return;
    const dismiss = document.createElement("button");
    dismiss.type = "button";
    dismiss.className = "link-button";
    dismiss.textContent = "Dismiss";
    dismiss.addEventListener("click", () => {
      this.pending.remove(item.client_id);
      li.remove();
      this.elements.delete(item.client_id);
    });
    li.querySelector(".msg-meta").append(dismiss);
  }

  #renderPending(item) {
    const li = this.#messageElement(this.me, this.nameOf(this.me), item.text, item.ts);
    li.dataset.clientId = item.client_id;
    li.classList.add("pending");
    this.elements.set(item.client_id, li);
    this.log.append(li);
    const waiting = this.socket.connected;
    this.#setStatus(item.client_id, waiting ? "Sending…" : "Waiting for connection", "waiting");
    this.#scrollToEnd();
  }

  #messageElement(identity, name, text, ts) {
    const li = document.createElement("li");
    li.className = identity === this.me ? "msg mine" : "msg";
    const meta = document.createElement("div");
    meta.className = "msg-meta";
    const who = document.createElement("span");
    who.className = "msg-author";
    who.append(isolated(identity === this.me ? "You" : name));
    const when = document.createElement("time");
    when.dateTime = new Date(ts * 1000).toISOString();
    when.textContent = timeFormat.format(new Date(ts * 1000));
    meta.append(who, when);
    const body = document.createElement("p");
    body.className = "msg-text";
    body.append(...linkified(text));
    li.append(meta, body);
    return li;
  }

  /** Stored messages in id order; pending ones stay at the end. */
  #place(li, id) {
    const after = [...this.log.children].find(
      (other) => other.classList.contains("pending") || Number(other.dataset.id) > id,
    );
    this.log.insertBefore(li, after || null);
  }

  #setStatus(key, text, state) {
    const li = this.elements.get(key);
    if (!li) return;
    let status = li.querySelector(".msg-status");
    if (!status) {
      status = document.createElement("span");
      status.className = "msg-status";
      li.querySelector(".msg-meta").append(status);
    }
    status.textContent = text;
    status.dataset.state = state;
    li.classList.toggle("pending", state !== "sent");
  }

  #statusText(id) {
    const seenBy = Object.entries(this.reads)
      .filter(([identity, upTo]) => identity !== this.me && upTo >= id)
      .map(([identity]) => this.nameFor(identity));
    return seenBy.length ? `Seen by ${seenBy.join(", ")}` : "Sent";
  }

  #refreshStatuses() {
    for (const [id, message] of this.messages) {
      if (message.from.identity === this.me) this.#setStatus(id, this.#statusText(id), "sent");
    }
  }

  #countUnread() {
    const mine = this.reads[this.me] || 0;
    let count = 0;
    for (const [id, message] of this.messages) {
      if (id > mine && message.from.identity !== this.me) count += 1;
    }
    this.onUnread(count);
  }

  #typing(active) {
    clearTimeout(this.typingTimer);
    if (active) this.typingTimer = setTimeout(() => this.#typing(false), TYPING_IDLE_MS);
    if (active === this.typingSent) return;
    this.typingSent = active;
    this.socket.request("typing", { typing: active }).catch(() => { this.typingSent = undefined; });
  }

  #othersTyping(identity, typing) {
    clearTimeout(this.typingPeople.get(identity));
    if (typing) {
      this.typingPeople.set(identity, setTimeout(() => this.#othersTyping(identity, false), TYPING_STALE_MS));
    } else {
      this.typingPeople.delete(identity);
    }
    const names = [...this.typingPeople.keys()].map((id) => isolated(this.nameFor(id)));
    const line = names.length === 0 ? [] : names.length === 1 ? [names[0], " is typing…"]
      : [...names.flatMap((n, i) => (i ? [" and ", n] : [n])), " are typing…"];
    this.typingLine.replaceChildren(...line);
  }

  #scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}

/** A person's name isolated for bidirectional text (a right-to-left or U+202E name cannot
 * reorder the words around it). */
function isolated(text) {
  const bdi = document.createElement("bdi");
  bdi.textContent = text;
  return bdi;
}

// http(s) addresses and bare www. ones; trailing punctuation stays text ("see x.com.").
const URL_PATTERN = /\b(?:https?:\/\/|www\.)[^\s<>"]+/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/;

/** The message text as nodes: text, and links for web addresses. Only http and https
 * become links (never javascript:, data: or anything else), each opening in a new tab
 * with rel="noopener noreferrer" so the page it opens cannot reach back into the room. */
export function linkified(text) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    let raw = match[0];
    const trail = raw.match(TRAILING);
    if (trail) raw = raw.slice(0, -trail[0].length);
    const href = safeHref(raw);
    if (!href) continue;
    if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
    const a = document.createElement("a");
    a.href = href;
    a.textContent = raw;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    nodes.push(a);
    last = match.index + raw.length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

function safeHref(raw) {
  try {
    const url = new URL(/^www\./i.test(raw) ? `https://${raw}` : raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}
