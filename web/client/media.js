// My audio/video connection to the SFU (docs/protocol-media.md) and the fallback ladder:
// video → audio-only → text chat, each step shown to me and announced to the room.
//
// Negotiation: I offer once per PeerConnection (`media_offer`, or `media_reconnect` for a
// replacement) and the SFU answers; after that the SFU is always the offerer
// (`media_renegotiate`) and I answer (`media_answer`). aiortc has no ICE restart, so a
// failed connection is replaced by a new one. The SFU keeps every negotiated payload
// type and extension id in its re-offers, so my offer goes out as the browser wrote it.
//
// Text mode (camera/mic refused, or an observer) still receives the others' audio and
// video on a receive-only connection when the network allows; the mode stays `text`
// because I publish nothing, and nothing steps down if that connection fails.
//
// The ladder climbs back by itself: a dead connection (ICE failed, "disconnected" for a
// few seconds, closed, `media_failed`, a network step down that does not heal) is
// replaced with `media_reconnect`; a ladder that ends in text tries again in the
// background with backoff (backoff.js), at once when the browser says the network is
// back (`online`). A rebuild aims at the mode the person chose (`capability`), never
// above it. Nothing is negotiated while the socket is down: rejoining rebuilds.

import { Backoff } from "./backoff.js";
import { diagnostics } from "./diagnostics.js";
import { best, connectionQuality, inboundQuality } from "./quality.js";
import { isNetworkReason, plainReason } from "./reasons.js";
import { ScreenShare } from "./screenshare.js";

const CONNECT_TIMEOUT_MS = 3500; // per attempt: video, video again ("reconnecting…"), audio
const DISCONNECTED_GRACE_MS = 3000; // "disconnected" often heals by itself
const STEPPED_DOWN_GRACE_MS = 8000; // a network step down with a live connection: wait for media_recovered this long
const STATS_INTERVAL_MS = 2000;
const STALLED_SAMPLES = 2; // a partner's video decoding nothing for this many samples is "paused"
const ATTEMPTS = { video: 2, audio: 1 };
const LADDER = ["video", "audio", "text"];

const WHY_TEXT = {
  unavailable: "This server does not offer audio and video right now, so the meeting is in text chat.",
  failed: "Audio and video could not connect from this network just now. You are in text chat; "
    + "it keeps trying in the background and your audio and video come back by themselves.",
  probe: "The connection check found that audio and video cannot connect from this network right now, "
    + "so you joined in text chat. It keeps trying in the background and switches on your audio and "
    + "video as soon as they can connect.",
};

class ConnectFailed extends Error {}

export class MediaSession {
  constructor({ socket, local, tiles, banner, me, announce, canPublish, onModeChange }) {
    this.socket = socket;
    this.local = local;
    this.tiles = tiles;
    this.banner = banner;
    this.me = me;
    this.announce = announce;
    this.canPublish = canPublish;
    this.onModeChange = onModeChange;
    this.mode = "text";
    this.pc = null;
    this.senders = { audio: null, video: null, screen: null }; // my senders on the current connection
    this.generation = 0; // bumps on every new PeerConnection; older ones stop acting
    this.remote = new Map(); // identity → MediaStream
    this.owners = new Map(); // transceiver mid → identity (from the SFU's offers)
    this.sources = new Map(); // transceiver mid → "camera" | "microphone" | "screen"
    this.screen = new ScreenShare({
      socket,
      sender: () => this.senders.screen,
      nameOf: (identity) => tiles.tiles?.get(identity)?.person?.name || identity,
    });
    if (canPublish) this.screen.addButton();
    this.iceServers = null;
    this.statsTimer = 0;
    this.retryTimer = 0;
    this.stoppedDownTimer = 0;
    this.stopped = false;
    this.audioOnlyChosen = false;
    this.backoff = new Backoff();
    this.wanted = false; // media should be up (false while a rebuild waits for the socket)
    this.trace = []; // recent transitions, for diagnostics (pairwiseDebug.state())

    socket.on("media_renegotiate", (offer) => this.#renegotiate(offer));
    socket.on("media_state", ({ identity, audio, video, screen }) => {
      this.tiles.setMic(identity, audio);
      this.tiles.setCameraOff(identity, !video);
      if (screen === false) this.screen.hide(identity);
    });
    socket.on("media_unavailable", ({ identity, kind, source, codec }) => {
      if (kind !== "video" || !this.tiles.has(identity)) return;
      if (source === "screen") this.screen.unavailable(identity, codec);
      else this.tiles.setUnavailable(identity, codec);
    });
    socket.on("media_paused", ({ identity, source, paused }) => {
      if (source === "screen") this.screen.paused(identity, Boolean(paused));
      else this.tiles.setLinkPaused(identity, Boolean(paused));
    });
    socket.on("media_failed", ({ reason }) => this.#dropped(reason || "media_failed", true));
    this.lostDevices = new Set(); // kinds whose device ended and could not be had again
    this.deviceCeiling = null; // the mode before a lost device lowered it
    local.onEnded = (kind) => this.#deviceEnded(kind);
    // A lost device comes back when its permission is allowed again or a device is plugged in.
    for (const name of ["camera", "microphone"]) {
      navigator.permissions?.query({ name }).then((status) => status.addEventListener("change", () => {
        if (status.state !== "denied" && this.lostDevices.size) this.#recoverDevices(`${name} allowed again`);
      })).catch(() => {});
    }
    navigator.mediaDevices?.addEventListener?.("devicechange", () => {
      if (this.lostDevices.size) this.#recoverDevices("a device was plugged in");
    });
    window.addEventListener("online", () => this.#networkChanged("the network came back"));
    navigator.connection?.addEventListener?.("change", () => this.#networkChanged("the network changed"));
  }

  /** The best mode this device can offer: video, audio, or text. */
  get capability() {
    if (!this.canPublish) return "text";
    if (this.local.hasVideo && this.local.isEnabled("video") && !this.audioOnlyChosen) return "video";
    return this.local.hasAudio ? "audio" : "text";
  }

  /** After the first join: show my preview and connect the best mode available. `probe` is
   * the pre-join check's result (null while it is still running): when it found that media
   * cannot connect from here, I start in text and the ladder climbs in the background. */
  async start(probe = null) {
    this.tiles.setStream(this.me, this.local.stream);
    const problem = this.local.problem;
    if (this.canPublish && problem && this.capability === "text") {
      await this.#loadConfig().catch(() => {}); // for the dial-in number, if the room has one
      this.banner.show({
        title: "You are in text chat",
        text: `${problem.message} You can still chat with everyone here, and see and hear them.`,
        tone: "warning",
        retry: () => this.retryDevices(),
        dialin: this.dialin || null,
      });
    } else if (problem && problem.kind === "missing_camera") {
      this.banner.show({ title: "You joined with audio only", text: problem.message, tone: "info" });
    }
    if (probe && !probe.ok && this.capability !== "text") {
      this.#note(`pre-join check failed (${probe.reason}): starting in text`);
      this.lastDrop = "pre-join check: media cannot connect";
      await this.#goText(WHY_TEXT.probe, "pre-join check: media cannot connect");
      this.#scheduleRetry();
      return;
    }
    this.#climb(this.capability, false);
  }

  /** The socket came back and the room was joined again: the SFU dropped our peer with it,
   * and the server has me in text (join's mode) until I say otherwise. */
  rejoined(serverMode = "text") {
    if (this.stopped) return;
    this.mode = serverMode;
    this.onModeChange();
    this.#note("rejoined the room: rebuilding media");
    this.backoff.reset();
    this.#climb(this.capability, true, !this.pc);
  }

  /** Ask for the camera and microphone again (after the person changed a permission). */
  async retryDevices() {
    this.banner.show({ title: "Checking your camera and microphone…", text: "", tone: "progress" });
    await this.local.start();
    this.tiles.setStream(this.me, this.local.stream);
    if (this.capability === "text") {
      this.start();
      return;
    }
    this.banner.hide();
    this.#climb(this.capability, true);
  }

  /** The person chose audio-only (true) or video again (false). Turning video back on
   * resumes the camera on the existing sender (replaceTrack) when there is one, and
   * otherwise replaces the connection with one that sends it. */
  async chooseAudioOnly(on) {
    this.audioOnlyChosen = on;
    this.tiles.setReceivingVideo(!on);
    if (on) {
      this.#sendVideo(false);
      this.#control({ video: false, receive_video: false });
      if (this.mode === "video") await this.#setMode("audio", "chose audio only", true);
      return;
    }
    if (!this.local.hasVideo) await this.local.add("video");
    if (!this.local.hasVideo) return;
    this.local.setEnabled("video", true);
    this.tiles.setStream(this.me, this.local.stream);
    await this.#resumeVideo("turned video back on");
  }

  /** "Start video" / "Unmute" from any mode: get the device if this page has none yet, then
   * send it, on the current connection when it has a sender for it, else on a new one. */
  async turnOn(kind) {
    if (kind === "video") {
      this.audioOnlyChosen = false;
      this.tiles.setReceivingVideo(true);
      return this.chooseAudioOnly(false);
    }
    if (!this.local.hasAudio) await this.local.add("audio");
    if (!this.local.hasAudio) return;
    this.local.setEnabled("audio", true);
    this.tiles.setStream(this.me, this.local.stream);
    if (this.senders.audio && this.pc) {
      this.deviceChanged();
      if (this.mode === "text") await this.#setMode(this.capability, "turned the microphone on", true);
    } else {
      this.chosen = "turned the microphone on";
      this.#climb(this.capability, true);
    }
  }

  async #resumeVideo(reason) {
    if (this.senders.video && this.pc?.connectionState === "connected") {
      this.#sendVideo(true);
      this.#control({ video: this.local.isEnabled("video"), receive_video: true });
      await this.#setMode("video", reason, true);
      this.banner.hide();
    } else {
      this.chosen = reason;
      this.#climb("video", true);
    }
  }

  /** Mute or camera toggles: tell the SFU so the others see it on my tile. */
  deviceChanged() {
    this.#control({ audio: this.local.isEnabled("audio"),
      video: this.local.isEnabled("video") && !this.audioOnlyChosen && this.mode === "video" });
  }

  /** The server moved me (its health monitor saw no media or high loss, or the connection
   * died). Below video I stop sending video (the SFU stops forwarding it anyway) but keep
   * the connection and my audio, so the monitor can see the network heal and step me back
   * up (`media_recovered`). When the step down came from the network and my connection is
   * not healthy (or does not heal soon), I rebuild it myself. */
  serverMode(mode, reason) {
    this.#note(`server mode ${mode}: ${reason}`);
    const previous = this.mode;
    this.mode = mode;
    this.onModeChange();
    this.#sendVideo(mode === "video" && !this.audioOnlyChosen);
    if (mode === previous) return;
    const down = LADDER.indexOf(mode) > LADDER.indexOf(previous);
    if (!down) {
      clearTimeout(this.stoppedDownTimer);
      if (mode === "video" && this.capability === "video" && !this.senders.video) {
        // Back up to video (media_recovered) on a connection that has no camera sender
        // (it was built for audio): build one that has.
        this.#climb("video", true, true);
        return;
      }
      if (mode === this.capability) this.banner.hide();
      this.announce(mode === "video" ? "Your video is back on" : "Your audio is back on");
      return;
    }
    if (!isNetworkReason(reason) || !this.wanted) return;
    this.banner.show({ title: mode === "text" ? "Reconnecting your audio and video…" : "Switched to audio only",
      text: `${plainReason(reason)[0].toUpperCase()}${plainReason(reason).slice(1)}. Your chat works as before, `
        + "and this comes back by itself when your network recovers.",
      tone: mode === "text" ? "progress" : "info",
      retry: mode === "text" ? null : () => this.chooseAudioOnly(false) });
    if (reason === "high_loss") return; // a new connection would lose as much; the monitor steps back up
    if (this.pc?.connectionState !== "connected") {
      this.#dropped(reason, true);
      return;
    }
    clearTimeout(this.stoppedDownTimer);
    this.stoppedDownTimer = setTimeout(() => {
      if (LADDER.indexOf(this.mode) > LADDER.indexOf(this.capability)) this.#dropped(reason, true);
    }, STEPPED_DOWN_GRACE_MS);
  }

  /** Send my camera on the existing video sender, or nothing (no renegotiation). */
  #sendVideo(on) {
    const video = this.local.stream?.getVideoTracks()[0] || null;
    const sender = this.senders.video;
    if (sender && this.pc) sender.replaceTrack(on ? video : null).catch(() => {});
  }

  // -- a device lost mid-call --------------------------------------------------------

  /** A camera or microphone track ended by itself. Every track of one capture ends at
   * once, so the kinds are gathered for a moment before asking for them again. */
  #deviceEnded(kind) {
    this.#note(`${kind} device ended`);
    this.lostDevices.add(kind);
    clearTimeout(this.deviceTimer);
    this.deviceTimer = setTimeout(() => this.#recoverDevices("a device stopped"), 300);
  }

  /** Ask again for every lost device, put what came back on the current connection
   * (replaceTrack, no renegotiation), and move to the best rung the devices allow: down
   * when the camera (or both) stayed away, back to where I was once they return. */
  async #recoverDevices(why) {
    if (this.stopped) return;
    if (this.recoveringDevices) {
      this.recoverAgain = why;
      return;
    }
    this.recoveringDevices = true;
    try {
      const kinds = [...this.lostDevices];
      const missing = await this.local.recover(kinds);
      this.lostDevices = new Set(missing);
      this.#note(`devices after ${why}: ${missing.length ? `${missing.join(", ")} unavailable` : "all back"}`);
      this.tiles.setStream(this.me, this.local.stream);
      const audio = this.local.stream?.getAudioTracks()[0] || null;
      if (this.senders.audio && this.pc) this.senders.audio.replaceTrack(audio).catch(() => {});
      this.#sendVideo(this.mode === "video" && !this.audioOnlyChosen);
      this.onModeChange();
      const target = this.capability;
      const lost = missing.map((kind) => (kind === "video" ? "camera" : "microphone")).join("_and_");
      if (missing.length && LADDER.indexOf(target) > LADDER.indexOf(this.mode)) {
        this.deviceCeiling ??= this.mode;
        await this.#setMode(target, `${lost}_unavailable`);
        this.banner.show({
          title: target === "audio" ? "Your camera stopped" : "Your camera and microphone stopped",
          text: `${this.local.problem?.message || "The device stopped."} The call continues `
            + `${target === "audio" ? "with audio" : "in text chat"}, and comes back by itself when it is allowed again.`,
          tone: "warning",
          retry: () => this.#recoverDevices("try again"),
        });
      } else if (this.deviceCeiling) {
        // Back up as far as the devices now allow, never above where I was.
        const back = this.deviceCeiling;
        if (!missing.length) this.deviceCeiling = null;
        const to = LADDER[Math.max(LADDER.indexOf(back), LADDER.indexOf(target))];
        const returned = kinds.includes("video") && !missing.includes("video") ? "camera" : "microphone";
        if (to === this.mode) {
          if (!missing.length) this.banner.hide();
        } else if (to === "video" && this.senders.video && this.pc?.connectionState === "connected") {
          this.#sendVideo(true);
          this.#control({ video: this.local.isEnabled("video"), receive_video: true });
          await this.#setMode("video", `${returned}_available`);
          this.banner.hide();
          this.announce("Your video is back on");
        } else {
          // The connection has no sender for it (built below video): one that has.
          this.lastDrop = `${returned}_available`;
          this.banner.hide();
          this.#climb(to, true);
        }
      }
    } finally {
      this.recoveringDevices = false;
    }
    if (this.recoverAgain) {
      const again = this.recoverAgain;
      this.recoverAgain = null;
      if (this.lostDevices.size) this.#recoverDevices(again);
    }
  }

  forget(identity) {
    this.remote.delete(identity);
    this.screen.hide(identity);
    for (const [mid, owner] of this.owners) if (owner === identity) this.owners.delete(mid);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.stoppedDownTimer);
    this.#close();
  }

  #note(text) {
    this.trace.push(`${new Date().toISOString().slice(11, 23)} ${text}`);
    if (this.trace.length > 80) this.trace.shift();
  }

  // -- the ladder --------------------------------------------------------------------

  /** Connect at `mode`, stepping down after failed attempts; `reconnecting` shows it, and
   * `quiet` (a background retry from text) keeps the banner as it is. A ladder that ends
   * in text schedules the next try with backoff: text after a failure is never final. */
  async #climb(mode, reconnecting, quiet = false) {
    clearTimeout(this.retryTimer);
    clearTimeout(this.stoppedDownTimer);
    const run = ++this.generation;
    this.wanted = true;
    this.climbing = true;
    try {
      await this.#ladder(run, mode, reconnecting, quiet);
    } finally {
      if (run === this.generation) this.climbing = false;
    }
  }

  async #ladder(run, mode, reconnecting, quiet) {
    if (mode === "text") {
      // Joining with camera and microphone switched off is a choice; refused or missing
      // devices are not.
      const chosen = this.canPublish && !this.local.problem;
      await this.#setMode("text", this.canPublish ? "no camera or microphone" : "observer", chosen);
      await this.#receive(run, reconnecting);
      return;
    }
    let why = "";
    for (const step of LADDER.slice(LADDER.indexOf(mode))) {
      if (step === "text") break;
      // A background try makes one attempt per rung: it may be replacing a working
      // audio connection, which should not stay down for long.
      const attempts = quiet ? 1 : ATTEMPTS[step];
      for (let attempt = 0; attempt < attempts; attempt += 1) {
        if ((reconnecting || attempt > 0) && !quiet) {
          this.banner.show({ title: "Reconnecting…",
            text: step === "video" ? "Your audio and video dropped. Trying to connect again."
              : "Trying again with audio only, which needs less of the network.",
            tone: "progress" });
        }
        try {
          this.#note(`connect ${step} attempt ${attempt + 1}${reconnecting ? " (reconnecting)" : ""}`);
          await this.#connect(step, run, reconnecting);
          if (run !== this.generation) return;
          if (step === mode) this.backoff.reset(); // below it, the climb back keeps backing off
          const chosen = this.chosen && step === mode ? this.chosen : "";
          this.chosen = "";
          await this.#setMode(step, chosen || (step !== mode ? why : "")
            || (reconnecting ? `reconnected: ${this.lastDrop || "client"}` : "connected"),
            Boolean(chosen));
          if (step !== mode) {
            this.banner.show({ title: "You are on audio only",
              text: "Video could not connect, so the call continues with audio. Your chat works as before, "
                + "and your video comes back by itself as soon as it can connect.",
              tone: "info", retry: () => this.#climb("video", true) });
            this.#scheduleRetry(); // climb back to video in the background
            return;
          } else if (reconnecting || attempt > 0) {
            this.banner.hide();
            this.announce("Audio and video reconnected");
          }
          return;
        } catch (err) {
          this.#note(`failed: ${err.message}`);
          if (run !== this.generation) return;
          why = err.message;
          if (err.code === "unknown_event") return this.#goText(WHY_TEXT.unavailable, "no media service", false);
          if (err.code === "offline") return this.#waitForSocket();
          reconnecting = true;
        }
      }
    }
    if (run === this.generation) {
      await this.#goText(WHY_TEXT.failed, why || "media did not connect", true, quiet);
      this.#scheduleRetry();
    }
  }

  /** Text mode: receive the others' audio and video if this network lets media through;
   * a failure tries again in the background. */
  async #receive(run, replacing) {
    try {
      this.#note("connect receive-only");
      await this.#connect("text", run, replacing);
      this.backoff.reset();
    } catch (err) {
      this.#note(`receive-only failed: ${err.message}`);
      if (run !== this.generation) return;
      this.#close();
      if (err.code === "offline") this.#waitForSocket();
      else if (err.code !== "unknown_event") this.#scheduleRetry();
    }
  }

  /** The next background attempt, after the backoff's wait. */
  #scheduleRetry() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    const wait = this.backoff.next();
    this.#note(`next try in ${(wait / 1000).toFixed(1)} s`);
    this.retryTimer = setTimeout(() => this.#retryNow(), wait);
  }

  #retryNow() {
    if (this.stopped) return;
    if (!this.socket.connected) {
      this.#waitForSocket();
      return;
    }
    const healthy = this.pc?.connectionState === "connected" && this.mode === this.capability;
    if (!healthy) this.#climb(this.capability, true, true);
  }

  /** Nothing can be negotiated without the socket: `rejoined` rebuilds when it is back. */
  #waitForSocket() {
    this.#note("waiting for the server connection");
    clearTimeout(this.retryTimer);
    this.wanted = false;
  }

  /** `online` or a network change: a good moment to try at once rather than at the next backoff. */
  #networkChanged(why) {
    this.#note(why);
    if (this.stopped || !this.socket.connected) return;
    const healthy = this.pc && this.pc.connectionState === "connected"
      && this.mode === this.capability;
    if (healthy) return;
    this.backoff.reset();
    this.lastDrop = why;
    this.#retryNow();
  }

  async #goText(explanation, reason, retry = true, quiet = false) {
    this.#close();
    await this.#setMode("text", reason);
    if (explanation && !quiet) this.#showText(explanation, retry);
  }

  #showText(text, retry = true) {
    this.banner.show({
      title: "You are in text chat",
      text,
      tone: "warning",
      retry: retry ? () => { this.backoff.reset(); this.#climb(this.capability, true); } : null,
      dialin: this.dialin || null,
    });
    this.announce("Audio and video are off. You are in text chat.");
  }

  /** Say my mode to the room; `choice` marks the person's own choice (not a fallback). */
  async #setMode(mode, reason, choice = false) {
    const changed = mode !== this.mode;
    this.mode = mode;
    this.onModeChange();
    // The camera goes out exactly in video mode (a step down on the way may have held it).
    this.#sendVideo(mode === "video" && !this.audioOnlyChosen);
    if (!changed) return;
    this.#note(`mode ${mode}: ${reason}${choice ? " (choice)" : ""}`);
    try {
      await this.socket.request("media_mode", { mode, reason: reason.slice(0, 200), choice });
    } catch {
      // the rejoin after a reconnect sends the mode again
    }
  }

  /** My connection is gone or useless: rebuild it now (a first failure) or after the
   * backoff (repeated ones). `why` is a reason code or words, for the server's log. */
  #dropped(why, network = false) {
    this.#note(`dropped: ${why}`);
    if (this.stopped) return;
    this.lastDrop = why;
    if (this.climbing) return; // the attempt under way replaces this connection anyway
    if (!this.socket.connected) {
      this.#waitForSocket();
      return;
    }
    if (!navigator.onLine) {
      this.#note("offline: waiting for the network to come back");
      clearTimeout(this.retryTimer);
      return;
    }
    if (network && this.backoff.failures > 0) {
      this.#scheduleRetry();
      return;
    }
    this.backoff.failures += 1; // the next drop soon after waits a little
    this.#climb(this.capability, true).catch(() => {});
  }

  // -- one PeerConnection ------------------------------------------------------------

  async #connect(mode, run, replacing) {
    // The old connection closes only once the SFU has the new offer: closing it first
    // would read at the server as one more dead connection (docs/protocol-media.md).
    const old = this.#close(false);
    try {
      await this.#open(mode, run, replacing);
    } finally {
      old?.close();
    }
  }

  async #open(mode, run, replacing) {
    if (this.iceServers === null) await this.#loadConfig();
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers || [],
      iceTransportPolicy: diagnostics.forceRelay ? "relay" : "all",
      bundlePolicy: "max-bundle",
    });
    this.pc = pc;
    const stream = this.local.stream;
    const audio = stream?.getAudioTracks()[0];
    const video = stream?.getVideoTracks()[0];
    if (mode !== "text" && audio) {
      this.senders.audio = pc.addTransceiver(audio, { direction: "sendrecv", streams: [stream] }).sender;
    } else pc.addTransceiver("audio", { direction: "recvonly" });
    if (mode === "video" && video) {
      const init = { direction: "sendrecv", streams: [stream] };
      const layers = simulcastEncodings(video);
      if (layers) init.sendEncodings = layers;
      this.senders.video = pc.addTransceiver(video, init).sender;
    } else if (mode === "text") pc.addTransceiver("video", { direction: "recvonly" });
    // Screen share slot: sendonly, silent until I share (screenshare.js).
    const screen = mode !== "text" && this.canPublish
      ? pc.addTransceiver(this.screen.track || "video", { direction: "sendonly" }) : null;
    this.senders.screen = screen?.sender || null;
    pc.ontrack = (event) => this.#track(event);
    pc.onconnectionstatechange = () => this.#stateChanged(pc, run);

    const connected = new Promise((resolve, reject) => {
      const check = () => {
        if (pc.connectionState === "connected") resolve();
        else if (pc.connectionState === "failed" || pc.connectionState === "closed") {
          reject(new ConnectFailed(`${mode} connection ${pc.connectionState}`));
        }
      };
      pc.addEventListener("connectionstatechange", check);
      setTimeout(() => reject(new ConnectFailed(`${mode} did not connect within ${CONNECT_TIMEOUT_MS / 1000} s`)),
        CONNECT_TIMEOUT_MS);
    });
    connected.catch(() => {});
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const event = replacing ? "media_reconnect" : "media_offer";
    const payload = { sdp: pc.localDescription.sdp, type: "offer" };
    if (screen?.mid) payload.sources = { [screen.mid]: "screen" };
    if (replacing) payload.reason = (this.lastDrop || "client reconnect").slice(0, 200) || "client";
    // Until the answer comes, any re-offer is for the connection this one replaces (the
    // SFU answers before it re-offers on the new one): #renegotiate drops those.
    this.offering = pc;
    let answer;
    try {
      answer = await this.socket.request(event, payload);
    } finally {
      if (this.offering === pc) this.offering = null;
    }
    if (run !== this.generation) throw new ConnectFailed("superseded");
    this.#learnOwners(answer);
    this.answering = pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    await this.answering;
    await layersFor(this.senders.video).catch((err) => this.#note(`simulcast: ${err.message}`));
    await connected;
    this.#watchDtls(pc, run);
    if (this.screen.sharing) this.#control({ screen: true }); // still sharing after a rebuild
    // Below video for the network (not a choice) the camera is not reported off: the
    // session log would read it as the person's choice.
    if (mode === "video") this.#control({ audio: this.local.isEnabled("audio"), video: this.local.isEnabled("video"), receive_video: true });
    else if (mode === "audio") this.#control({ audio: this.local.isEnabled("audio"), receive_video: !this.audioOnlyChosen });
    this.#startStats();
  }

  async #loadConfig() {
    try {
      const config = await this.socket.request("media_config", {});
      this.iceServers = config.ice_servers || [];
      this.dialin = config.dialin || null;
    } catch (err) {
      if (err.code === "unknown_event") this.iceServers = [];
      else throw err;
    }
  }

  async #renegotiate({ sdp, revision, tracks }) {
    const pc = this.pc;
    if (!pc || pc.signalingState === "closed") return;
    if (this.offering === pc) {
      this.#note(`re-offer ${revision} for the replaced connection dropped`);
      return;
    }
    await this.answering?.catch(() => {}); // apply my offer's answer first
    if (pc !== this.pc) return;
    this.#learnOwners({ tracks });
    try {
      await pc.setRemoteDescription({ type: "offer", sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await this.socket.request("media_answer", { sdp: pc.localDescription.sdp, type: "answer", revision });
      this.#attachAll();
    } catch (err) {
      if (pc === this.pc) this.#dropped(`renegotiation_failed: ${err.message}`.slice(0, 200), true);
    }
  }

  /** The SFU names each forwarded track's owner: `tracks: {mid: {identity, kind}}`. */
  #learnOwners({ tracks }) {
    const sharing = new Set();
    for (const [mid, info] of Object.entries(tracks || {})) {
      this.owners.set(mid, info.identity);
      this.sources.set(mid, info.source || (info.kind === "audio" ? "microphone" : "camera"));
      if (info.source === "screen") sharing.add(info.identity);
    }
    if (tracks) this.screen.keep(sharing);
  }

  /** Who sent a track: named in the SFU's offer (`tracks`), or by its stream id (the
   * SFU sets each forwarded stream's id to its owner's identity). */
  #owner(transceiver, streams) {
    return this.owners.get(transceiver.mid)
      || streams.map((stream) => stream.id).find((id) => id !== this.me && this.tiles.has(id))
      || null;
  }

  #track(event) {
    this.#attach(event.transceiver, event.streams);
  }

  /** Put every receiving track on its owner's tile (owners may be learnt after ontrack). */
  #attachAll() {
    for (const transceiver of this.pc ? this.pc.getTransceivers() : []) {
      if (transceiver.currentDirection === "recvonly" || transceiver.currentDirection === "sendrecv") {
        this.#attach(transceiver, []);
      }
    }
  }

  #attach(transceiver, streams) {
    const identity = this.#owner(transceiver, streams);
    const track = transceiver.receiver.track;
    if (!identity || identity === this.me || !this.tiles.has(identity)) return;
    this.owners.set(transceiver.mid, identity);
    if (this.sources.get(transceiver.mid) === "screen") {
      if (track.readyState === "live") this.screen.show(identity, track);
      return;
    }
    let stream = this.remote.get(identity);
    if (!stream) {
      stream = new MediaStream();
      this.remote.set(identity, stream);
    }
    for (const old of stream.getTracks()) {
      if (old.kind === track.kind && old !== track) stream.removeTrack(old);
    }
    if (!stream.getTracks().includes(track)) {
      stream.addTrack(track);
      // a new forward (they left and came back): the SFU starts it unpaused
      if (track.kind === "video") this.tiles.setLinkPaused(identity, false);
    }
    this.tiles.setStream(identity, stream);
  }

  #stateChanged(pc, run) {
    if (pc !== this.pc || run !== this.generation) return;
    clearTimeout(this.graceTimer);
    if (pc.connectionState === "failed") this.#dropped("ice_failed", true);
    if (pc.connectionState === "closed") this.#dropped("connection_closed", true);
    if (pc.connectionState === "disconnected") {
      this.graceTimer = setTimeout(() => {
        if (pc === this.pc && pc.connectionState !== "connected") this.#dropped("ice_disconnected", true);
      }, DISCONNECTED_GRACE_MS);
    }
  }

  /** The SFU closing its side sends a DTLS close_notify: the transport says `closed` while
   * the connection's own state still reads `connected` (it only follows ICE), so only the
   * transport tells that the far end is gone. */
  #watchDtls(pc, run) {
    const dtls = [...pc.getSenders(), ...pc.getReceivers()].map((x) => x.transport).find(Boolean);
    if (!dtls) return;
    const check = () => {
      if (pc !== this.pc || run !== this.generation) return;
      if (dtls.state === "closed" || dtls.state === "failed") {
        this.#dropped(dtls.state === "closed" ? "connection_closed" : "dtls_failed", true);
      }
    };
    dtls.addEventListener("statechange", check);
    check();
  }

  #control(controls) {
    if (!this.pc) return;
    this.socket.request("media_control", controls).catch(() => {});
  }

  #startStats() {
    clearInterval(this.statsTimer);
    let previous = new Map();
    const still = new Map(); // identity → samples in a row with no video frame decoded
    this.statsTimer = setInterval(async () => {
      const pc = this.pc;
      if (!pc) return;
      if (pc.signalingState === "closed" || pc.connectionState === "closed") {
        // close() fires no event: only looking tells that this connection is gone
        this.#dropped("connection_closed", true);
        return;
      }
      const report = await pc.getStats();
      const current = new Map();
      report.forEach((stat) => current.set(stat.id, stat));
      const own = connectionQuality(current, previous);
      this.tiles.setQuality(this.me, own.level, own.detail);
      const byPerson = new Map();
      for (const transceiver of pc.getTransceivers()) {
        const identity = this.owners.get(transceiver.mid);
        const track = transceiver.receiver.track;
        const quality = inboundQuality(current, previous, track?.id);
        if (!identity || identity === this.me || !quality) continue;
        if (this.sources.get(transceiver.mid) === "screen") continue; // not their camera tile
        if (track.kind === "video" && transceiver.currentDirection !== "inactive") {
          const frames = decodedFrames(current, track.id) - decodedFrames(previous, track.id);
          still.set(identity, frames > 0 ? 0 : (still.get(identity) || 0) + 1);
          this.tiles.setStalled(identity, still.get(identity) >= STALLED_SAMPLES);
        }
        byPerson.set(identity, [...(byPerson.get(identity) || []), quality]);
      }
      for (const [identity, qualities] of byPerson) {
        const { level, detail } = best(qualities);
        this.tiles.setQuality(identity, level, detail);
      }
      this.#reportViews();
      previous = current;
    }, STATS_INTERVAL_MS);
  }

  /** Tell the SFU how large I show each partner's camera (device pixels), so it sends
   * a simulcast layer no larger (`media_view`); sent when a size changes. */
  #reportViews() {
    const views = [];
    for (const video of document.querySelectorAll(".tile[data-identity] video")) {
      const identity = video.closest(".tile").dataset.identity;
      if (identity === this.me) continue;
      const ratio = window.devicePixelRatio || 1;
      views.push({ identity, source: "camera", width: Math.round(video.clientWidth * ratio), height: Math.round(video.clientHeight * ratio) });
    }
    const key = JSON.stringify(views);
    if (!views.length || key === this.lastViews) return;
    this.lastViews = key;
    this.socket.request("media_view", { views }).catch(() => {});
  }

  /** Forget the current connection; it is closed now unless `now` is false, when the
   * caller gets it back to close later. */
  #close(now = true) {
    clearInterval(this.statsTimer);
    clearTimeout(this.graceTimer);
    const pc = this.pc;
    if (pc) {
      pc.onconnectionstatechange = null;
      pc.ontrack = null;
      if (now) pc.close();
    }
    this.pc = null;
    this.senders = { audio: null, video: null, screen: null };
    this.screen.clear();
    this.sources.clear();
    this.lastViews = "";
    for (const identity of this.remote.keys()) {
      this.tiles.setStream(identity, null);
      this.tiles.setQuality(identity, "unknown");
      this.tiles.setLinkPaused(identity, false); // a new connection starts with nothing paused
    }
    this.remote.clear();
    this.owners.clear();
    this.tiles.setQuality(this.me, "unknown");
    return now ? null : pc;
  }
}

/** Simulcast for a camera of 540 lines or more: three layers (quarter, half, full
 * size, lowest first), so each partner gets what their network and tile can take;
 * smaller cameras send one layer. */
function simulcastEncodings(track) {
  const { height = 0 } = track.getSettings?.() || {};
  if (height < 540) return null;
  return [
    { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
    { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
    { rid: "f", maxBitrate: 1_500_000 },
  ];
}

/** VP9 and AV1 simulcast in Chrome needs a `scalabilityMode` on every encoding: without
 * one it sends only the first (smallest) layer. The codec is known once the answer is
 * applied (the SFU may leave VP9 or AV1 out: docs/protocol-media.md, "Codecs"), so the
 * layers get one temporal-layered mode each then; VP8 and H264 are left as they are. */
async function layersFor(sender) {
  const params = sender?.getParameters();
  const codec = params?.codecs?.[0]?.mimeType.toLowerCase();
  if (!params || params.encodings.length < 2 || !SCALABLE_CODECS.has(codec)) return;
  if (params.encodings.every((e) => e.scalabilityMode === SIMULCAST_MODE)) return;
  for (const encoding of params.encodings) encoding.scalabilityMode = SIMULCAST_MODE;
  await sender.setParameters(params);
}

const SCALABLE_CODECS = new Set(["video/vp9", "video/av1"]);
const SIMULCAST_MODE = "L1T3"; // one spatial layer per encoding, three temporal ones

function decodedFrames(stats, trackId) {
  for (const stat of stats.values()) {
    if (stat.type === "inbound-rtp" && stat.kind === "video" && stat.trackIdentifier === trackId) {
      return stat.framesDecoded || 0;
    }
  }
  return 0;
}
