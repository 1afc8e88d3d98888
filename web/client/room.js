// The meeting: participants and their tiles, the controls, and the socket's life
// (join on every connect, so a reconnect rejoins, refreshes history and resends chat).

import { Banner } from "./banner.js";
import { Chat } from "./chat.js";
import { MediaSession } from "./media.js";
import { isNetworkReason, plainReason } from "./reasons.js";
import { Tiles } from "./tiles.js";

const PUBLISHING_ROLES = new Set(["mentor", "mentee", "operator"]);
// A partner whose socket dropped keeps a "Reconnecting…" tile for the server's
// `grace_seconds` (this long if it names none) unless they join again.
const PARTNER_GRACE_S = 30;

export class Room {
  /**
   * @param {object} o
   * @param {import("./socket.js").RoomSocket} o.socket
   * @param {{room: string, sub: string, name: string, role: string}} o.claims
   * @param {import("./localmedia.js").LocalMedia} o.local
   * @param {(text: string) => void} o.announce
   * @param {(title: string, text: string) => void} o.onEnded
   * @param {() => ({ok: boolean, reason?: string}|null)} [o.probe] the pre-join check's result
   */
  constructor({ socket, claims, local, announce, onEnded, probe = () => null }) {
    this.probe = probe;
    this.leaving = new Map(); // identity → timer: dropped partners shown as reconnecting
    this.socket = socket;
    this.me = claims.sub;
    this.claims = claims;
    this.local = local;
    this.announce = announce;
    this.onEnded = onEnded;
    this.people = new Map(); // identity → participant
    this.joined = false;
    this.left = false;

    this.banner = new Banner();
    this.tiles = new Tiles(document.getElementById("tiles"), this.me);
    this.chat = new Chat({
      socket, me: this.me, room: claims.room, announce,
      nameOf: (identity) => this.people.get(identity)?.name || (identity === this.me ? claims.name : identity),
      onUnread: (count) => this.#showUnread(count),
    });
    this.media = new MediaSession({
      socket, local, tiles: this.tiles, banner: this.banner, me: this.me, announce,
      canPublish: PUBLISHING_ROLES.has(claims.role),
      onModeChange: () => this.#refreshControls(),
    });
    this.#bindSocket();
    this.#bindControls();
  }

  /** Enter the room (the socket may still be connecting: joining happens on connect). */
  enter() {
    document.getElementById("room").hidden = false;
    this.tiles.upsert({ identity: this.me, name: this.claims.name, role: this.claims.role,
      media_mode: "text" });
    this.#refreshControls();
    if (this.socket.connected) this.#join();
  }

  async leave() {
    this.left = true;
    this.media.stop();
    this.local.stop();
    try {
      await this.socket.request("leave", {});
    } catch {
      // leaving an unreachable server: disconnecting says the same thing
    }
    this.socket.close();
    this.onEnded("You left the meeting", "Your chat stays in the room for next time.");
  }

  async #join() {
    let ack;
    try {
      ack = await this.socket.request("join", { media_mode: "text" });
    } catch (err) {
      if (err.code === "room_full") {
        this.socket.close();
        this.onEnded("This room is full", err.message);
      } else if (err.code !== "offline") {
        this.banner.show({ title: "Could not join the room", text: err.message, tone: "warning",
          retry: () => this.#join() });
      }
      return;
    }
    const rejoin = this.joined;
    this.joined = true;
    const present = new Set(ack.participants.map((p) => p.identity));
    for (const identity of this.tiles.identities()) {
      if (!present.has(identity)) this.#removePerson(identity);
    }
    for (const person of ack.participants) this.#addPerson(person);
    this.chat.load({
      history: ack.history,
      reads: ack.reads,
      canWrite: this.#canWrite(ack.room),
      chatPrivate: Boolean(ack.chat_private),
    });
    document.getElementById("room-name").textContent = ack.room.name;
    if (rejoin) this.media.rejoined(ack.you?.media_mode || "text");
    else this.media.start(this.probe());
  }

  #bindSocket() {
    const s = this.socket;
    s.addEventListener("online", () => {
      if (!this.left) this.#join();
    });
    s.addEventListener("offline", (event) => {
      this.chat.offline();
      if (event.detail.final && !this.left && !this.replaced) {
        this.onEnded("You were disconnected", "The server ended this session. Join again to continue.");
      }
    });
    s.on("participant_joined", (person) => {
      const known = this.people.has(person.identity);
      const back = this.tiles.isReconnecting(person.identity);
      this.#settle(person.identity);
      this.#addPerson(person);
      if (back) this.announce(`${person.name} is back`);
      else if (!known) this.announce(`${person.name} joined`);
    });
    s.on("participant_left", ({ identity, reason, grace_seconds: grace }) => {
      const name = this.people.get(identity)?.name || identity;
      if (reason === "disconnected" && this.people.has(identity) && !this.leaving.has(identity)) {
        // Their connection dropped: hold the tile as "Reconnecting…" for a while.
        this.tiles.setReconnecting(identity, true);
        this.announce(`${name} lost their connection. Reconnecting…`);
        this.leaving.set(identity, setTimeout(() => {
          this.leaving.delete(identity);
          this.#removePerson(identity);
          this.announce(`${name} left`);
        }, (grace ?? PARTNER_GRACE_S) * 1000));
        return;
      }
      this.#settle(identity);
      this.#removePerson(identity);
      this.announce(`${name} left`);
    });
    s.on("presence", ({ identity, presence }) => {
      const person = this.people.get(identity);
      if (!person) return;
      // "reconnecting": the server holds their place while their connection is down.
      this.tiles.setReconnecting(identity, presence === "reconnecting");
      this.tiles.upsert({ ...person, presence });
    });
    s.on("media_mode", ({ identity, mode, previous, reason }) => {
      const person = this.people.get(identity);
      if (person) person.media_mode = mode;
      this.tiles.setMode(identity, mode);
      if (identity === this.me) {
        this.media.serverMode(mode, reason);
        return;
      }
      // Their media connection died and their page is rebuilding it.
      this.tiles.setReconnecting(identity, mode === "text" && previous !== "text" && isNetworkReason(reason));
      if (!person) return;
      const words = { video: "video", audio: "audio only", text: "text chat", phone: "a phone call" };
      const why = isNetworkReason(reason) ? ` (${plainReason(reason).replace(/\byour\b/g, "their")})` : "";
      this.announce(`${person.name} is now in ${words[mode] || mode}${why}`);
    });
    s.on("error", ({ code, message }) => {
      if (code === "replaced") {
        this.replaced = true;
        this.media.stop();
        this.onEnded("You joined from another window", `${message}. Use that window, or join again here.`);
      }
    });
    document.addEventListener("visibilitychange", () => {
      if (this.joined && this.socket.connected) {
        const presence = document.visibilityState === "visible" ? "online" : "away";
        this.socket.request("presence", { presence }).catch(() => {});
      }
    });
  }

  #bindControls() {
    const mic = document.getElementById("ctl-mic");
    const cam = document.getElementById("ctl-cam");
    const audioOnly = document.getElementById("ctl-audio-only");
    const chatButton = document.getElementById("ctl-chat");
    // Every choice can be undone from any mode: a device this page does not have yet (joined
    // in text, or audio only) is asked for, and sent on a new connection when needed.
    mic.addEventListener("click", async () => {
      if (!this.local.hasAudio) await this.media.turnOn("audio");
      else {
        this.local.setEnabled("audio", !this.local.isEnabled("audio"));
        this.media.deviceChanged();
      }
      this.#refreshControls();
    });
    cam.addEventListener("click", async () => {
      const sending = this.media.mode === "video" && this.local.hasVideo && !this.media.audioOnlyChosen;
      if (!sending) await this.media.turnOn("video");
      else {
        this.local.setEnabled("video", !this.local.isEnabled("video"));
        this.media.deviceChanged();
      }
      this.#refreshControls();
    });
    audioOnly.addEventListener("click", async () => {
      await this.media.chooseAudioOnly(!this.media.audioOnlyChosen);
      this.#refreshControls();
    });
    chatButton.addEventListener("click", () => {
      const open = chatButton.getAttribute("aria-expanded") !== "true";
      chatButton.setAttribute("aria-expanded", String(open));
      document.getElementById("chat").hidden = !open;
      document.getElementById("room").classList.toggle("chat-closed", !open);
      this.chat.setVisible(open);
      if (open) document.getElementById("chat-input").focus();
    });
    document.getElementById("ctl-leave").addEventListener("click", () => this.leave());
  }

  #refreshControls() {
    const mic = document.getElementById("ctl-mic");
    const cam = document.getElementById("ctl-cam");
    const audioOnly = document.getElementById("ctl-audio-only");
    const mode = this.media.mode;
    const publish = this.media.canPublish;
    const sendsAudio = mode === "video" || mode === "audio";
    const micOn = this.local.hasAudio && this.local.isEnabled("audio");
    mic.disabled = !publish;
    mic.setAttribute("aria-pressed", String(!micOn));
    mic.querySelector(".control-label").textContent = micOn ? "Mute" : "Unmute";
    const camOn = mode === "video" && this.local.hasVideo && this.local.isEnabled("video")
      && !this.media.audioOnlyChosen;
    cam.disabled = !publish;
    cam.setAttribute("aria-pressed", String(!camOn));
    cam.querySelector(".control-label").textContent = camOn ? "Stop video" : "Start video";
    audioOnly.disabled = !publish || !(this.local.hasVideo || this.media.audioOnlyChosen);
    audioOnly.setAttribute("aria-pressed", String(this.media.audioOnlyChosen));
    this.tiles.setMic(this.me, sendsAudio ? micOn : null);
    this.tiles.setCameraOff(this.me, mode !== "video" || !camOn);
  }

  #addPerson(person) {
    const previous = this.people.get(person.identity) || {};
    this.people.set(person.identity, { ...previous, ...person });
    this.tiles.upsert(this.people.get(person.identity));
    if (person.identity === this.me) this.#refreshControls();
  }

  /** A dropped partner is back (or really gone): stop holding their tile. */
  #settle(identity) {
    clearTimeout(this.leaving.get(identity));
    this.leaving.delete(identity);
    this.tiles.setReconnecting(identity, false);
  }

  #removePerson(identity) {
    if (identity === this.me) return;
    this.people.delete(identity);
    this.tiles.remove(identity);
    this.media.forget(identity);
  }

  #canWrite(room) {
    return this.claims.role !== "observer" || Boolean(room.observers_may_chat);
  }

  #showUnread(count) {
    const badge = document.getElementById("unread");
    badge.hidden = count === 0;
    badge.textContent = String(count);
    badge.setAttribute("aria-label", `${count} unread`);
    document.title = (count ? `(${count}) ` : "") + "Meeting · Pairwise";
  }
}
