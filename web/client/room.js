// The meeting: participants and their tiles, the controls, and the socket's life
// (join on every connect, so a reconnect rejoins, refreshes history and resends chat).

import { bdi } from "../sessionlog.js";
import { Banner, notice } from "./banner.js";
import { Chat } from "./chat.js";
import { DeviceSettings } from "./devices.js";
import { StageLayout } from "./layout.js";
import { MediaSession } from "./media.js";
import { isNetworkReason, plainReason } from "./reasons.js";
import { isPhone, MeetingInfo, Popover, renderPeople, Shortcuts, SidePanels } from "./panels.js";
import { Reactions } from "./reactions.js";
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
    this.names = new Map([[claims.sub, claims.name]]); // everyone ever seen here: names stay after they leave
    this.joined = false;
    this.left = false;
    this.networkDown = false; // I am below video because of the network (not my choice)

    this.banner = new Banner();
    this.tiles = new Tiles(document.getElementById("tiles"), this.me);
    this.layout = new StageLayout(document.getElementById("tiles"), this.tiles, this.me);
    this.nameOf = (identity) => this.people.get(identity)?.name || this.names.get(identity) || identity;
    this.chat = new Chat({
      socket, me: this.me, room: claims.room, announce, nameOf: this.nameOf,
      onUnread: (count) => this.#showUnread(count),
    });
    this.media = new MediaSession({
      socket, local, tiles: this.tiles, banner: this.banner, me: this.me, announce,
      canPublish: PUBLISHING_ROLES.has(claims.role),
      onModeChange: () => this.#refreshControls(),
    });
    // A shared screen's place says why it is paused: I chose audio only, or its sharer is below video.
    Object.assign(this.media.screen, {
      modeOf: (identity) => this.people.get(identity)?.media_mode,
      resumeVideo: async () => {
        await this.media.chooseAudioOnly(false);
        this.#refreshControls();
      },
      announce,
      onChange: () => this.#pictureInPictureFollows(),
    });
    this.devices = new DeviceSettings({ local, senders: () => this.media.senders, tiles: this.tiles,
      me: this.me, announce });
    this.tiles.onLayout = () => {
      this.layout.apply();
      this.devices.applySpeaker();
    };
    this.reactions = new Reactions({ socket, tiles: this.tiles, me: this.me, nameOf: this.nameOf, announce,
      onHands: () => this.#refreshPeople() });
    this.panels = new SidePanels({ onChatVisible: (open) => this.chat.setVisible(open) });
    this.info = new MeetingInfo();
    this.#bindSocket();
    this.#bindControls();
  }

  /** Enter the room (the socket may still be connecting: joining happens on connect). */
  enter() {
    document.getElementById("room").hidden = false;
    // A phone opens on the video; its chat is a full-screen layer opened from the bar.
    this.panels.show(isPhone() ? null : "chat");
    this.info.update({ room: this.claims.room, dialin: null });
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
      historyHasMore: Boolean(ack.history_has_more),
      reads: ack.reads,
      canWrite: this.#canWrite(ack.room),
      chatPrivate: Boolean(ack.chat_private),
    });
    // A pair's room is called by the pair's title (typed by people: isolated); others by id.
    const label = ack.room.title || ack.room.name;
    document.getElementById("room-name").replaceChildren(bdi(label));
    document.getElementById("room-title").replaceChildren("Meeting: ", bdi(label));
    this.info.update({ room: ack.room.name });
    this.reactions.load();
    this.socket.request("media_config", {})
      .then((config) => this.info.update({ dialin: config.dialin || null })).catch(() => {});
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
      person.presence = presence;
      this.tiles.upsert({ ...person, presence });
      this.#refreshPeople();
    });
    s.on("media_mode", ({ identity, mode, previous, reason, choice }) => {
      const person = this.people.get(identity);
      if (person) person.media_mode = mode;
      this.tiles.setMode(identity, mode, Boolean(choice));
      this.media.screen.refresh(identity);
      this.#refreshPeople();
      if (identity === this.me) {
        // Below video because of the network (not my choice): my share's notice says so.
        if (mode === "video" || choice) this.networkDown = false;
        else if (isNetworkReason(reason)) this.networkDown = true;
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
    s.on("active_speaker", ({ identity }) => this.layout.setSpeaker(identity));
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
    document.getElementById("ctl-leave").addEventListener("click", () => this.leave());
    new Popover("ctl-react", "react-menu");
    new Popover("ctl-more", "more-menu");
    const layoutButton = document.getElementById("ctl-layout");
    const toggleLayout = () => {
      this.layout.setView(this.layout.view === "grid" ? "speaker" : "grid");
      layoutButton.textContent = this.layout.view === "grid" ? "Speaker view" : "Grid view";
    };
    layoutButton.addEventListener("click", toggleLayout);
    const pip = document.getElementById("ctl-pip");
    pip.hidden = !document.pictureInPictureEnabled;
    pip.addEventListener("click", () => this.togglePictureInPicture());
    document.getElementById("ctl-settings").addEventListener("click", () => this.devices.open());
    document.getElementById("ctl-info").addEventListener("click", () => this.info.open());
    const help = () => document.getElementById("help-dialog").showModal();
    document.getElementById("ctl-help").addEventListener("click", help);
    this.shortcuts = new Shortcuts({
      m: ["Mute or unmute your microphone", () => mic.click()],
      v: ["Start or stop your video", () => cam.click()],
      c: ["Open or close the chat", () => this.panels.toggle("chat")],
      u: ["Show or hide the people in the meeting", () => this.panels.toggle("people")],
      r: ["Raise or lower your hand", () => this.reactions.toggleHand()],
      w: ["Switch between speaker view and grid view (groups)", toggleLayout],
      p: ["Picture-in-picture: keep the video on top of other windows", () => this.togglePictureInPicture()],
      d: ["Choose your camera, microphone and speaker", () => this.devices.open()],
      i: ["Meeting info: link and dial-in number", () => this.info.open()],
      "?": ["Show these shortcuts", help],
    });
  }

  /** A shared screen (else the featured participant's video) in a floating window over
   * other apps (and back): during a share, the share is what one keeps an eye on. */
  async togglePictureInPicture() {
    if (document.pictureInPictureElement) {
      await document.exitPictureInPicture().catch(() => {});
      return;
    }
    const video = this.#featuredVideo();
    if (!video || !video.srcObject) {
      notice("There is no video to show in picture-in-picture yet");
      return;
    }
    try {
      await video.requestPictureInPicture();
    } catch (err) {
      notice(`Picture-in-picture is not available: ${err.message}`);
    }
  }

  /** The video the room features: a shown share, else the featured participant's. */
  #featuredVideo() {
    const featured = this.layout.featured || this.me;
    return this.media.screen.shownVideo(featured) || this.tiles.root(featured)?.querySelector("video") || null;
  }

  /** A share started or stopped while a picture-in-picture window is open: the window
   * shows what the room features now (switching needs no click while one is open). */
  async #pictureInPictureFollows() {
    const floating = document.pictureInPictureElement;
    const video = this.#featuredVideo();
    if (!floating || !video?.srcObject || video === floating) return;
    await video.requestPictureInPicture().catch(() => {});
  }

  #refreshPeople() {
    renderPeople(document.getElementById("people-list"), this.people, this.me, this.reactions.hands);
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
    this.media.screen.setReceiving(!this.media.audioOnlyChosen);
    this.media.screen.setMyMode(mode, this.media.audioOnlyChosen, this.networkDown);
  }

  #addPerson(person) {
    const previous = this.people.get(person.identity) || {};
    this.people.set(person.identity, { ...previous, ...person });
    if (person.name) this.names.set(person.identity, person.name);
    this.tiles.upsert(this.people.get(person.identity));
    this.#refreshPeople();
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
    this.reactions.forget(identity);
    this.#refreshPeople();
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
