// Changing devices in the middle of a call: camera, microphone, speaker output and noise
// suppression. A new camera or microphone replaces the track on the sender the connection
// already has (RTCRtpSender.replaceTrack): no renegotiation, the partner's decoder just
// sees new frames. The speaker is each participant's <video> element's output
// (HTMLMediaElement.setSinkId).

const SPEAKER_KEY = "pairwise.speaker";

export class DeviceSettings {
  /**
   * @param {object} o
   * @param {import("./localmedia.js").LocalMedia} o.local
   * @param {() => ({audio: RTCRtpSender|null, video: RTCRtpSender|null})} o.senders
   * @param {import("./tiles.js").Tiles} o.tiles
   * @param {string} o.me
   * @param {(text: string) => void} o.announce
   */
  constructor({ local, senders, tiles, me, announce }) {
    this.local = local;
    this.senders = senders;
    this.tiles = tiles;
    this.me = me;
    this.announce = announce;
    this.dialog = document.getElementById("settings-dialog");
    this.camera = document.getElementById("set-camera");
    this.mic = document.getElementById("set-mic");
    this.speaker = document.getElementById("set-speaker");
    this.noise = document.getElementById("set-noise");
    this.status = document.getElementById("settings-status");
    this.sinkId = sessionStorage.getItem(SPEAKER_KEY) || "";
    this.camera.addEventListener("change", () => this.switchTo("video", this.camera.value));
    this.mic.addEventListener("change", () => this.switchTo("audio", this.mic.value));
    this.speaker.addEventListener("change", () => this.setSpeaker(this.speaker.value));
    this.noise.addEventListener("change", () => this.setNoiseSuppression(this.noise.checked));
    navigator.mediaDevices?.addEventListener?.("devicechange", () => {
      if (this.dialog.open) this.fill();
    });
  }

  async open() {
    await this.fill();
    if (!this.dialog.open) this.dialog.showModal();
  }

  /** The lists of devices, with the ones in use selected. */
  async fill() {
    const all = navigator.mediaDevices?.enumerateDevices ? await navigator.mediaDevices.enumerateDevices() : [];
    const pick = (select, kind, current, noun, fallback) => {
      const devices = all.filter((d) => d.kind === kind && d.deviceId);
      const options = devices.map((d, i) => new Option(d.label || `${noun} ${i + 1}`, d.deviceId,
        false, d.deviceId === current));
      if (fallback) options.unshift(new Option(fallback, "", false, current === ""));
      if (!options.length) options.push(new Option(`No ${noun.toLowerCase()} found`, ""));
      select.replaceChildren(...options);
      select.disabled = devices.length === 0;
    };
    pick(this.camera, "videoinput", this.local.currentDevice("video"), "Camera");
    pick(this.mic, "audioinput", this.local.currentDevice("audio"), "Microphone");
    const canRoute = "setSinkId" in HTMLMediaElement.prototype;
    pick(this.speaker, "audiooutput", this.sinkId, "Speaker", "System default");
    this.speaker.disabled = !canRoute;
    if (!canRoute) this.speaker.title = "This browser always plays through the system's speaker";
    const track = this.#track("audio");
    this.noise.disabled = !track;
    this.noise.checked = track ? track.getSettings().noiseSuppression !== false : this.local.noiseSuppression;
  }

  /** Capture from another camera ("video") or microphone ("audio") and send it in place of
   * the current one, on the same sender. The old track stops only once the new one is on. */
  async switchTo(kind, deviceId, quiet = false) {
    const old = this.#track(kind);
    let fresh;
    try {
      const got = await navigator.mediaDevices.getUserMedia({ [kind]: this.local.constraints(kind, deviceId) });
      fresh = got.getTracks()[0];
    } catch (err) {
      this.#say(`Could not switch: ${err.name === "NotAllowedError" ? "the browser refused" : "that device did not start"}.`);
      this.fill();
      return false;
    }
    if (old) fresh.enabled = old.enabled; // muted stays muted, a stopped camera stays stopped
    if (kind === "video") this.local.cameraId = deviceId;
    else this.local.microphoneId = deviceId;
    const sender = this.senders()[kind];
    // A sender that is sending nothing (the camera is paused or audio-only) stays empty.
    if (sender && (sender.track || !old)) await sender.replaceTrack(fresh);
    if (!this.local.stream) this.local.stream = new MediaStream();
    if (old) {
      this.local.stream.removeTrack(old);
      old.stop();
    }
    this.local.stream.addTrack(fresh);
    if (kind === "video") this.tiles.setStream(this.me, this.local.stream);
    if (!quiet) this.#say(`Now using ${fresh.label || (kind === "video" ? "the new camera" : "the new microphone")}.`);
    return true;
  }

  /** Play everyone through another output device ("" is the system default). */
  async setSpeaker(sinkId) {
    this.sinkId = sinkId;
    sessionStorage.setItem(SPEAKER_KEY, sinkId);
    await this.applySpeaker();
    this.#say(sinkId ? `Now playing through ${this.speaker.selectedOptions[0]?.text}.` : "Now playing through the system default speaker.");
  }

  /** Route every participant's tile to the chosen speaker (called for new tiles too). */
  async applySpeaker() {
    if (!("setSinkId" in HTMLMediaElement.prototype)) return;
    await Promise.all(this.tiles.videos().map((video) => (video.sinkId === this.sinkId
      ? null : video.setSinkId(this.sinkId).catch(() => {}))));
  }

  /** The browser's noise suppression on the microphone, on or off: on the live track when
   * the browser can change it there, else on a fresh capture of the same microphone sent
   * in its place (replaceTrack, as for a device switch). */
  async setNoiseSuppression(on) {
    const before = this.local.noiseSuppression;
    this.local.setNoiseSuppression(on);
    const track = this.#track("audio");
    if (!track) return;
    try {
      await track.applyConstraints({ ...track.getConstraints(), noiseSuppression: on });
    } catch {
      // some browsers cannot change audio processing on a live track
    }
    if (track.getSettings().noiseSuppression !== on) {
      const switched = await this.switchTo("audio", this.local.currentDevice("audio"), true);
      if (!switched) {
        this.local.setNoiseSuppression(before);
        this.noise.checked = before;
        return;
      }
    }
    this.#say(on ? "Noise suppression is on." : "Noise suppression is off.");
  }

  #track(kind) {
    return this.local.stream?.getTracks().find((t) => t.kind === kind && t.readyState === "live") || null;
  }

  #say(text) {
    this.status.textContent = text;
    this.announce(text);
  }
}
