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

import { diagnostics } from "./diagnostics.js";
import { best, connectionQuality, inboundQuality } from "./quality.js";

const CONNECT_TIMEOUT_MS = 3500; // per attempt: video, video again ("reconnecting…"), audio
const DISCONNECTED_GRACE_MS = 3000; // "disconnected" often heals by itself
const STATS_INTERVAL_MS = 2000;
const ATTEMPTS = { video: 2, audio: 1 };
const RECEIVE_ATTEMPTS = 2; // receive-only (text mode) gives up quietly after this many failures
const LADDER = ["video", "audio", "text"];

const WHY_TEXT = {
  unavailable: "This server does not offer audio and video right now, so the meeting is in text chat.",
  failed: "Audio and video could not connect from this network (a firewall or VPN may block them). "
    + "You are in text chat; the others can still read and write to you.",
  server: "The server moved you to text chat because your audio and video stopped arriving",
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
    this.generation = 0; // bumps on every new PeerConnection; older ones stop acting
    this.remote = new Map(); // identity → MediaStream
    this.owners = new Map(); // transceiver mid → identity (from the SFU's offers)
    this.iceServers = null;
    this.statsTimer = 0;
    this.stopped = false;
    this.audioOnlyChosen = false;
    this.receiveFailures = 0;
    this.trace = []; // recent transitions, for diagnostics (pairwiseDebug.state())

    socket.on("media_renegotiate", (offer) => this.#renegotiate(offer));
    socket.on("media_state", ({ identity, audio, video }) => {
      this.tiles.setMic(identity, audio);
      this.tiles.setCameraOff(identity, !video);
    });
    socket.on("media_failed", ({ reason }) => this.#dropped(`the server lost the connection (${reason})`));
  }

  /** The best mode this device can offer: video, audio, or text. */
  get capability() {
    if (!this.canPublish) return "text";
    if (this.local.hasVideo && this.local.isEnabled("video") && !this.audioOnlyChosen) return "video";
    return this.local.hasAudio ? "audio" : "text";
  }

  /** After the first join: show my preview and connect the best mode available. */
  async start() {
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
    this.#climb(this.capability, false);
  }

  /** The socket came back and the room was joined again: the SFU dropped our peer with it. */
  rejoined() {
    if (this.mode !== "text" || this.pc) this.#climb(this.mode === "text" ? this.capability : this.mode, true);
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
    this.#climb(this.capability, false);
  }

  /** The person chose audio-only (true) or video again (false). */
  async chooseAudioOnly(on) {
    this.audioOnlyChosen = on;
    const video = this.local.stream?.getVideoTracks()[0] || null;
    const sender = this.pc?.getSenders().find((s) => s.track?.kind === "video" || s.kind === "video");
    if (sender) await sender.replaceTrack(on ? null : video).catch(() => {});
    this.#control({ video: !on && this.local.isEnabled("video"), receive_video: !on });
    if (this.mode !== "text") await this.#setMode(on ? "audio" : "video", on ? "chose audio only" : "turned video back on");
  }

  /** Mute or camera toggles: tell the SFU so the others see it on my tile. */
  deviceChanged() {
    this.#control({ audio: this.local.isEnabled("audio"),
      video: this.local.isEnabled("video") && !this.audioOnlyChosen });
  }

  /** The server moved me (its fallback monitor saw no media, or high loss). Below video
   * I stop sending video (the SFU stops forwarding it anyway) but keep the connection
   * and my audio, so the monitor can see the network heal and step me back up; at
   * `video` again (`media_recovered`) the camera resumes. A dead connection is
   * replaced through `media_failed` → `media_reconnect`, not here. */
  serverMode(mode, reason) {
    this.#note(`server mode ${mode}: ${reason}`);
    const previous = this.mode;
    this.mode = mode;
    this.onModeChange();
    if (mode === previous) return;
    this.#sendVideo(mode === "video" && !this.audioOnlyChosen);
    if (mode === "text" && previous !== "text") {
      this.#showText(`${WHY_TEXT.server} (${reason}). It comes back by itself when your network recovers.`);
    } else if (mode === "audio" && previous === "video") {
      this.banner.show({ title: "Switched to audio only",
        text: `Your video was turned off to keep the call going (${reason}). It comes back by itself `
          + "when your network recovers.", tone: "info",
        retry: () => this.chooseAudioOnly(false) });
    } else if (LADDER.indexOf(mode) < LADDER.indexOf(previous)) {
      this.banner.hide();
      this.announce(mode === "video" ? "Your video is back on" : "Your audio is back on");
    }
  }

  /** Send my camera on the existing video sender, or nothing (no renegotiation). */
  #sendVideo(on) {
    const video = this.local.stream?.getVideoTracks()[0] || null;
    const sender = this.pc?.getSenders().find((s) => s.track?.kind === "video"
      || (s.track === null && this.pc.getTransceivers().some((t) => t.sender === s && t.receiver.track?.kind === "video")));
    if (sender) sender.replaceTrack(on ? video : null).catch(() => {});
  }

  forget(identity) {
    this.remote.delete(identity);
    for (const [mid, owner] of this.owners) if (owner === identity) this.owners.delete(mid);
  }

  stop() {
    this.stopped = true;
    this.#close();
  }

  #note(text) {
    this.trace.push(`${new Date().toISOString().slice(11, 23)} ${text}`);
    if (this.trace.length > 50) this.trace.shift();
  }

  // -- the ladder --------------------------------------------------------------------

  /** Connect at `mode`, stepping down after failed attempts; `reconnecting` shows it. */
  async #climb(mode, reconnecting) {
    const run = ++this.generation;
    if (mode === "text") {
      await this.#setMode("text", "no camera or microphone");
      await this.#receive(run);
      return;
    }
    let why = "";
    for (const step of LADDER.slice(LADDER.indexOf(mode))) {
      if (step === "text") break;
      for (let attempt = 0; attempt < ATTEMPTS[step]; attempt += 1) {
        if (reconnecting || attempt > 0) {
          this.banner.show({ title: "Reconnecting…",
            text: step === "video" ? "Your audio and video dropped. Trying to connect again."
              : "Trying again with audio only, which needs less of the network.",
            tone: "progress" });
        }
        try {
          this.#note(`connect ${step} attempt ${attempt + 1}${reconnecting ? " (reconnecting)" : ""}`);
          await this.#connect(step, run, reconnecting);
          if (run !== this.generation) return;
          await this.#setMode(step, why || (reconnecting ? "reconnected" : "connected"));
          if (step !== mode) {
            this.banner.show({ title: "You are on audio only",
              text: "Video could not connect, so the call continues with audio. Your chat works as before.",
              tone: "info", retry: () => this.#climb("video", true) });
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
          reconnecting = true;
        }
      }
    }
    if (run === this.generation) {
      this.#close();
      await this.#goText(mode === "text" ? "" : WHY_TEXT.failed, why || "media did not connect", true);
    }
  }

  /** Text mode: receive the others' audio and video if this network lets media through. */
  async #receive(run) {
    if (this.receiveFailures >= RECEIVE_ATTEMPTS) {
      this.#close();
      return;
    }
    try {
      this.#note("connect receive-only");
      await this.#connect("text", run, false);
      this.receiveFailures = 0;
    } catch (err) {
      this.#note(`receive-only failed: ${err.message}`);
      if (run !== this.generation) return;
      this.receiveFailures += 1;
      this.#close();
    }
  }

  async #goText(explanation, reason, retry) {
    this.#close();
    await this.#setMode("text", reason);
    if (explanation) this.#showText(explanation, retry);
  }

  #showText(text, retry = true) {
    this.banner.show({
      title: "You are in text chat",
      text,
      tone: "warning",
      retry: retry ? () => this.#climb(this.capability, true) : null,
      dialin: this.dialin || null,
    });
    this.announce("Audio and video are off. You are in text chat.");
  }

  async #setMode(mode, reason) {
    const changed = mode !== this.mode;
    this.mode = mode;
    this.onModeChange();
    if (!changed) return;
    try {
      await this.socket.request("media_mode", { mode, reason: reason.slice(0, 200) });
    } catch {
      // the rejoin after a reconnect sends the mode again
    }
  }

  #dropped(why) {
    this.#note(`dropped: ${why}`);
    if (this.stopped || this.mode === "text" && !this.pc) return;
    this.#climb(this.mode === "text" ? this.capability : this.mode, true).catch(() => {});
    this.lastDrop = why;
  }

  // -- one PeerConnection ------------------------------------------------------------

  async #connect(mode, run, replacing) {
    this.#close();
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
    if (mode !== "text" && audio) pc.addTransceiver(audio, { direction: "sendrecv", streams: [stream] });
    else pc.addTransceiver("audio", { direction: "recvonly" });
    if (mode === "video" && video) pc.addTransceiver(video, { direction: "sendrecv", streams: [stream] });
    else if (mode === "text") pc.addTransceiver("video", { direction: "recvonly" });
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
    if (replacing) payload.reason = (this.lastDrop || "client reconnect").slice(0, 200);
    const answer = await this.socket.request(event, payload);
    if (run !== this.generation) throw new ConnectFailed("superseded");
    this.#learnOwners(answer);
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    await connected;
    if (mode !== "text") this.deviceChanged();
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
    if (!pc) return;
    this.#learnOwners({ tracks });
    try {
      await pc.setRemoteDescription({ type: "offer", sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await this.socket.request("media_answer", { sdp: pc.localDescription.sdp, type: "answer", revision });
      this.#attachAll();
    } catch (err) {
      if (pc === this.pc) this.#dropped(`renegotiation failed: ${err.message}`);
    }
  }

  /** The SFU names each forwarded track's owner: `tracks: {mid: {identity, kind}}`. */
  #learnOwners({ tracks }) {
    for (const [mid, info] of Object.entries(tracks || {})) this.owners.set(mid, info.identity);
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
    let stream = this.remote.get(identity);
    if (!stream) {
      stream = new MediaStream();
      this.remote.set(identity, stream);
    }
    for (const old of stream.getTracks()) {
      if (old.kind === track.kind && old !== track) stream.removeTrack(old);
    }
    if (!stream.getTracks().includes(track)) stream.addTrack(track);
    this.tiles.setStream(identity, stream);
  }

  #stateChanged(pc, run) {
    if (pc !== this.pc || run !== this.generation) return;
    clearTimeout(this.graceTimer);
    if (pc.connectionState === "failed") this.#dropped("the connection failed");
    if (pc.connectionState === "disconnected") {
      this.graceTimer = setTimeout(() => {
        if (pc === this.pc && pc.connectionState !== "connected") this.#dropped("the connection dropped");
      }, DISCONNECTED_GRACE_MS);
    }
  }

  #control(controls) {
    if (!this.pc) return;
    this.socket.request("media_control", controls).catch(() => {});
  }

  #startStats() {
    clearInterval(this.statsTimer);
    let previous = new Map();
    this.statsTimer = setInterval(async () => {
      const pc = this.pc;
      if (!pc) return;
      const report = await pc.getStats();
      const current = new Map();
      report.forEach((stat) => current.set(stat.id, stat));
      const own = connectionQuality(current, previous);
      this.tiles.setQuality(this.me, own.level, own.detail);
      const byPerson = new Map();
      for (const transceiver of pc.getTransceivers()) {
        const identity = this.owners.get(transceiver.mid);
        const quality = inboundQuality(current, previous, transceiver.receiver.track?.id);
        if (!identity || identity === this.me || !quality) continue;
        byPerson.set(identity, [...(byPerson.get(identity) || []), quality]);
      }
      for (const [identity, qualities] of byPerson) {
        const { level, detail } = best(qualities);
        this.tiles.setQuality(identity, level, detail);
      }
      previous = current;
    }, STATS_INTERVAL_MS);
  }

  #close() {
    clearInterval(this.statsTimer);
    clearTimeout(this.graceTimer);
    if (this.pc) {
      this.pc.onconnectionstatechange = null;
      this.pc.ontrack = null;
      this.pc.close();
    }
    this.pc = null;
    for (const identity of this.remote.keys()) {
      this.tiles.setStream(identity, null);
      this.tiles.setQuality(identity, "unknown");
    }
    this.remote.clear();
    this.owners.clear();
    this.tiles.setQuality(this.me, "unknown");
  }
}
