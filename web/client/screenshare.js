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

import { LINK_PAUSED } from "./tiles.js";

const LABEL = { off: "Share screen", on: "Stop sharing" };

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

  /** Put my shared track on the current connection's screen sender (after a rebuild too). */
  async attach() {
    const sender = this.sender();
    if (sender && this.track) await sender.replaceTrack(this.track);
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
    const codec = view.unavailable;
    const [text, why, label] = codec
      ? ["Video not supported by this browser", `They share in ${codec}, which this browser cannot play`, "video not supported"]
      : view.linkPaused ? [LINK_PAUSED.text, LINK_PAUSED.why, "paused for your connection"] : ["", "", ""];
    view.video.hidden = Boolean(text);
    view.state.hidden = !text;
    view.state.textContent = text;
    view.state.title = why;
    const name = this.nameOf(view.root.dataset.identity);
    view.root.setAttribute("aria-label", `${name} is sharing their screen${label ? `, ${label}` : ""}`);
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
    const name = document.createElement("bdi");
    name.textContent = this.nameOf(identity);
    caption.append(name, " is sharing their screen");
    root.append(video, state, caption);
    this.#stageFor().append(root);
    view = { root, video, state, track: null, unavailable: null, linkPaused: false };
    this.remote.set(identity, view);
    return view;
  }

  hide(identity) {
    const view = this.remote.get(identity);
    if (!view) return;
    view.root.remove();
    this.remote.delete(identity);
    if (this.stage && !this.remote.size) this.stage.hidden = true;
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
    if (!this.button) return;
    this.button.setAttribute("aria-pressed", String(this.sharing));
    this.button.querySelector(".control-label").textContent = this.sharing ? LABEL.on : LABEL.off;
  }
}
