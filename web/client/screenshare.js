// Screen share (docs/protocol-media.md, "Screen share"): my screen as a second video
// track, and the others' shared screens shown large above the tiles.
//
// Every publishing connection carries a second, sendonly video transceiver from the
// start (named `"screen"` in the offer's `sources`), so sharing needs no renegotiation:
// starting puts the getDisplayMedia track on it (`replaceTrack`) and tells the SFU
// (`media_control {"screen": true}`), which then forwards it to everyone with
// `source: "screen"` in their `tracks`. Stopping (my button, or the browser's own "Stop
// sharing") reverses both. The track's content hint is "detail": the browser keeps text
// sharp and lowers the frame rate instead of the resolution.
//
// Below video (audio only, or text while my connection is rebuilt) the SFU holds my share
// with my camera (docs/protocol-media.md): my page stops sending it too (an uplink too
// poor for a camera has no room for a screen), says so (after the network's step down:
// that it is the connection, and that the share comes back by itself, with nothing to
// click), and sends it again when my video is back. The capture itself goes on: a step
// down is often the network's, not mine, and stopping would have me pick the window
// again after every one. Likewise the others' shares say why they are paused when I
// chose audio only (the SFU sends me no video) or their sharer is below video, instead
// of a still picture. A picture-in-picture window open when a share comes or goes moves
// to what the room features then (room.js).

import { bdi } from "../sessionlog.js";
import { LINK_PAUSED } from "./tiles.js";

const LABEL = { off: "Share screen", on: "Stop sharing" };
const MODE_WORDS = { audio: "audio only", text: "text chat", phone: "phone call" };

export class ScreenShare {
  /**
   * @param {object} o
   * @param {{request: (event: string, data: object) => Promise<any>}} o.socket
   * @param {() => RTCRtpSender | null} o.sender my screen transceiver's sender, if connected
   * @param {(identity: string) => string} o.nameOf a participant's display name
   */
  constructor({ socket, sender, nameOf }) {
    this.socket = socket;
    this.sender = sender;
    this.nameOf = nameOf;
    this.track = null; // my shared screen's track while I share
    this.remote = new Map(); // identity → {root, video, track}
    this.button = null;
    this.stage = null;
    this.receiving = true; // false while I chose audio only: the SFU sends me no video
    this.myMode = "video"; // below video the SFU holds my share: not sent
    this.audioOnlyChosen = false; // my step below video was my choice, not the network's
    this.networkDown = false; // the network (the ladder's step down) put me below video
    this.notice = null; // on my page while my share is not sent
    // Set by the room: a participant's media mode, "turn my video back on", and the
    // screen reader's announcer.
    this.modeOf = () => "video";
    this.resumeVideo = null;
    this.announce = () => {};
    // Set by the room: a share came into view or went, so what the room features changed
    // (a picture-in-picture window follows it).
    this.onChange = () => {};
    document.addEventListener("fullscreenchange", () => {
      for (const view of this.remote.values()) this.#showFullscreen(view);
    });
  }

  /** Whether this browser can share its screen at all. Phone and tablet browsers (a coarse
   * pointer) cannot, whatever they expose, and their control bar has no room to spare:
   * eight buttons are 46 px each at 390 px, nine were 40. */
  static get supported() {
    return Boolean(navigator.mediaDevices?.getDisplayMedia) && !matchMedia("(pointer: coarse)").matches;
  }

  get sharing() {
    return this.track !== null;
  }

  /** Whether my share goes out: I share, and I am in video (the SFU holds it below). */
  get sending() {
    return this.sharing && this.myMode === "video";
  }

  /** Add the "Share screen" button to the room's control bar (before the chat button). */
  addButton(controls = document.getElementById("ctl-chat")) {
    if (!ScreenShare.supported || !controls || this.button) return;
    const button = document.createElement("button");
    button.id = "ctl-screen";
    button.type = "button";
    button.className = "control";
    button.setAttribute("aria-pressed", "false");
    // An icon like every other control: on a phone the bar shows icons only.
    button.innerHTML = '<svg aria-hidden="true" viewBox="0 0 24 24"><path d="M20 4H4a2 2 0 0 0-2 2v10a2 2 0 0 0 2 2h6v2H8v2h8v-2h-2v-2h6a2 2 0 0 0 2-2V6a2 2 0 0 0-2-2zm-8 3 4 4h-3v4h-2v-4H8l4-4z"/></svg>'
      + '<span class="control-label"></span>';
    button.addEventListener("click", () => (this.sharing ? this.stop() : this.start()).catch(() => {}));
    controls.before(button);
    this.button = button;
    this.#refresh();
  }

  async start() {
    if (this.sharing) return;
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { max: 15 } }, audio: false });
    const track = stream.getVideoTracks()[0];
    if (!track) return;
    if ("contentHint" in track) track.contentHint = "detail";
    track.addEventListener("ended", () => this.stop());
    this.track = track;
    await this.attach();
    await this.socket.request("media_control", { screen: true }).catch(() => {});
    this.#refresh();
  }

  async stop() {
    const track = this.track;
    if (!track) return;
    this.track = null;
    await this.sender()?.replaceTrack(null).catch(() => {});
    track.stop();
    await this.socket.request("media_control", { screen: false }).catch(() => {});
    this.#refresh();
  }

  /** Put my shared track on the current connection's screen sender (after a rebuild too),
   * or nothing while I am below video. */
  async attach() {
    const sender = this.sender();
    const track = this.sending ? this.track : null;
    if (sender && sender.track !== track) await sender.replaceTrack(track);
  }

  /** My media mode (after every change, and after a rebuild: a new connection starts with
   * my share on its sender whatever the mode); `networkDown`: the network put me there. */
  setMyMode(mode, audioOnlyChosen, networkDown = false) {
    this.myMode = mode;
    this.audioOnlyChosen = audioOnlyChosen;
    this.networkDown = networkDown && !audioOnlyChosen;
    this.attach().catch(() => {});
    this.#refresh();
  }

  /** I chose audio only (false) or video again: the SFU sends me no video, shares included. */
  setReceiving(on) {
    if (this.receiving === on) return;
    this.receiving = on;
    for (const view of this.remote.values()) this.#showState(view);
  }

  /** A participant's media mode changed: below video their share is held. */
  refresh(identity) {
    const view = this.remote.get(identity);
    if (view) this.#showState(view);
  }

  /** The video to float in picture-in-picture: `identity`'s share if it is shown, else
   * the first one shown (null if none is: a paused share would float a still picture). */
  shownVideo(identity) {
    const views = [this.remote.get(identity), ...this.remote.values()];
    return views.find((view) => view?.video.srcObject && !view.video.hidden)?.video || null;
  }

  /** Show a participant's shared screen large. */
  show(identity, track) {
    const view = this.#viewOf(identity);
    if (view.unavailable) {
      view.unavailable = null;
      this.#showState(view);
    }
    if (view.track !== track) {
      view.track = track;
      if (view.linkPaused) { // a new forward (a share restarted): the SFU starts it unpaused
        view.linkPaused = false;
        this.#showState(view);
      }
      view.video.srcObject = new MediaStream([track]);
      track.addEventListener("ended", () => {
        if (this.remote.get(identity)?.track === track) this.hide(identity);
      });
    }
  }

  /** A participant shares a screen the SFU cannot forward to me: it is in `codec` (VP9,
   * AV1), which this browser did not offer (`media_unavailable`, source "screen"). The
   * share's place says so, as their camera tile would, until they stop sharing
   * (`media_state` screen false), leave, or a track of it comes. */
  unavailable(identity, codec) {
    const view = this.#viewOf(identity);
    if (view.track) return;
    view.unavailable = codec;
    this.#showState(view);
  }

  /** The SFU stopped (or resumed) their share to me alone: my link could not carry it
   * (`media_paused`, source "screen"). */
  paused(identity, paused) {
    const view = this.remote.get(identity);
    if (!view) return;
    view.linkPaused = paused;
    this.#showState(view);
  }

  /** In place of the video, why it cannot be shown (or the video again). */
  #showState(view) {
    const identity = view.root.dataset.identity;
    const name = this.nameOf(identity);
    const codec = view.unavailable;
    const mode = this.modeOf(identity) || "video";
    const held = `paused (${MODE_WORDS[mode] || mode})`;
    const [text, why, label] = codec
      ? [["Video not supported by this browser"], `They share in ${codec}, which this browser cannot play`, "video not supported"]
      : !this.receiving ? [["Paused: you chose audio only"], "You receive no video while in audio only.", "paused, you chose audio only"]
      : mode !== "video" ? [[bdi(name), `'s share is ${held}`], "It comes back when their video is on again.", held]
      : view.linkPaused ? [[LINK_PAUSED.text], LINK_PAUSED.why, "paused for your connection"] : [[], "", ""];
    view.video.hidden = Boolean(text.length);
    view.state.hidden = !text.length;
    view.state.replaceChildren(...text);
    if (!codec && !this.receiving && this.resumeVideo) view.state.append(this.#resumeButton());
    view.state.title = why;
    view.root.setAttribute("aria-label", `${name} is sharing their screen${label ? `, ${label}` : ""}`);
  }

  #resumeButton() {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.style.cssText = "display:block;margin:0.75rem auto 0;";
    button.textContent = "Turn video back on";
    button.addEventListener("click", () => this.resumeVideo());
    return button;
  }

  /** Full screen: the share's figure (its state and caption with it), or back. */
  toggleFullscreen(identity) {
    const view = this.remote.get(identity);
    if (!view) return;
    if (document.fullscreenElement === view.root) document.exitFullscreen().catch(() => {});
    else view.root.requestFullscreen?.().catch(() => {});
  }

  /** The figure fills the screen while full screen: the video takes what the caption leaves. */
  #showFullscreen(view) {
    const full = document.fullscreenElement === view.root;
    view.root.style.display = full ? "flex" : "";
    view.root.style.flexDirection = full ? "column" : "";
    view.root.style.background = full ? "#000" : "";
    view.words.style.color = full ? "#fff" : ""; // (not the button's: it keeps its own)
    view.caption.style.padding = full ? "0.5rem" : "";
    view.video.style.maxHeight = full ? "none" : "70vh";
    view.video.style.flex = full ? "1" : "";
    view.video.style.minHeight = full ? "0" : "";
    view.full.textContent = full ? "Exit full screen" : "Full screen";
  }

  #viewOf(identity) {
    let view = this.remote.get(identity);
    if (view) return view;
    const root = document.createElement("figure");
    root.className = "screen-share";
    root.dataset.identity = identity;
    root.style.cssText = "margin:0 0 0.5rem;width:100%;";
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true;
    video.style.cssText = "width:100%;max-height:70vh;background:#000;object-fit:contain;";
    // Shown instead of the video when it cannot come (the same words as a camera tile's).
    const state = document.createElement("p");
    state.className = "screen-state";
    state.style.cssText = "margin:0;padding:3rem 1rem;text-align:center;background:#000;color:#fff;";
    state.hidden = true;
    const caption = document.createElement("figcaption");
    caption.style.cssText = "display:flex;align-items:center;justify-content:space-between;gap:0.5rem;";
    const name = document.createElement("bdi");
    name.textContent = this.nameOf(identity);
    const words = document.createElement("span");
    words.style.cssText = "min-width:0;overflow:hidden;text-overflow:ellipsis;";
    words.append(name, " is sharing their screen");
    // Full screen by a button (reached with Tab) or a double-click; Esc leaves it.
    const full = document.createElement("button");
    full.type = "button";
    full.className = "screen-fullscreen";
    full.style.flex = "none";
    full.textContent = "Full screen";
    full.hidden = !document.fullscreenEnabled;
    full.addEventListener("click", () => this.toggleFullscreen(identity));
    for (const el of [video, state]) el.addEventListener("dblclick", () => this.toggleFullscreen(identity));
    // Its first picture (of a share, or of a share shown again): the room features it now.
    video.addEventListener("loadeddata", () => this.onChange());
    caption.append(words, full);
    root.append(video, state, caption);
    this.#stageFor().append(root);
    view = { root, video, state, caption, words, full, track: null, unavailable: null, linkPaused: false };
    this.remote.set(identity, view);
    this.#showState(view);
    return view;
  }

  hide(identity) {
    const view = this.remote.get(identity);
    if (!view) return;
    if (document.fullscreenElement === view.root) document.exitFullscreen().catch(() => {});
    this.remote.delete(identity);
    if (document.pictureInPictureElement === view.video) {
      // Floating: the window moves to what the room features now before the video goes
      // (a video taken out of the page closes its window, and opening one again would
      // need a click).
      view.root.hidden = true;
      Promise.resolve(this.onChange()).finally(() => view.root.remove());
    } else {
      view.root.remove();
    }
    this.#hideEmptyStage();
  }

  #hideEmptyStage() {
    if (this.stage && !this.remote.size && !this.notice) this.stage.hidden = true;
  }

  /** Keep only the shares still listed by the SFU (identities), and those it cannot
   * forward to me (never listed: they go with `media_state` or the sharer). */
  keep(identities) {
    for (const [identity, view] of [...this.remote]) {
      if (!identities.has(identity) && !view.unavailable) this.hide(identity);
    }
  }

  /** Forget every share (my connection closed: the SFU says again what still holds). */
  clear() {
    for (const identity of [...this.remote.keys()]) this.hide(identity);
  }

  #stageFor() {
    if (!this.stage) {
      this.stage = document.createElement("section");
      this.stage.id = "screens";
      this.stage.className = "screens";
      this.stage.setAttribute("aria-label", "Shared screens");
      const tiles = document.getElementById("tiles");
      if (tiles) tiles.before(this.stage);
      else document.body.append(this.stage);
    }
    this.stage.hidden = false;
    return this.stage;
  }

  #refresh() {
    this.#showNotice();
    if (!this.button) return;
    this.button.setAttribute("aria-pressed", String(this.sharing));
    this.button.querySelector(".control-label").textContent = this.sharing ? LABEL.on : LABEL.off;
  }

  /** On my page, while I share below video: my share is not sent, why, and the way back.
   * (Stop video, unlike audio only, keeps the share going.) */
  #showNotice() {
    const held = this.sharing && !this.sending;
    if (!held) {
      this.notice?.remove();
      this.notice = null;
      this.#hideEmptyStage();
      return;
    }
    const why = this.myMode === "audio" ? "you are in audio only" : "you are in text chat";
    // The network's step down is undone by the ladder, not by a button: nothing to click.
    const text = this.networkDown
      ? (this.myMode === "audio"
        ? "Your screen is not being shared just now: your connection is too weak for it, so you are in audio only."
        : "Your screen is not being shared while your connection is rebuilt.")
        + " It is shared again by itself when your connection allows. You do not need to share again."
      : `Your screen is not being shared while ${why}. It is shared again when your video is back on.`;
    const chosen = this.myMode === "audio" && this.audioOnlyChosen && Boolean(this.resumeVideo);
    if (this.notice?.dataset.text === text && this.notice.dataset.chosen === String(chosen)) return;
    this.notice?.remove();
    const notice = document.createElement("div");
    notice.className = "screen-notice";
    notice.dataset.text = text;
    notice.dataset.chosen = String(chosen);
    // In the share's place (its viewers see "<name>'s share is paused" there).
    notice.style.cssText = "flex:1 1 0;display:grid;place-content:center;margin:0 0 0.5rem;padding:1rem;"
      + "text-align:center;background:#000;color:#fff;";
    const words = document.createElement("p");
    words.style.margin = "0";
    words.textContent = text;
    notice.append(words);
    if (chosen) {
      const hint = document.createElement("p");
      hint.style.cssText = "margin:0.25rem 0 0;font-size:0.9rem;";
      hint.textContent = "To share without your camera, use Stop video instead.";
      notice.append(hint, this.#resumeButton());
    }
    this.notice = notice;
    this.#stageFor().prepend(notice);
    this.announce(text);
  }
}
