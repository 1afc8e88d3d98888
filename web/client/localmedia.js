// The camera and microphone on this device: capture, device lists, and what went wrong
// in words a person can act on.

const EXPLAIN = {
  refused: "Your browser blocked the camera and microphone for this page. Allow them from the "
    + "camera icon in the address bar (or the browser's site settings), then choose Try again.",
  missing_both: "No camera or microphone was found on this device.",
  missing_camera: "No camera was found on this device.",
  missing_microphone: "No microphone was found on this device.",
  busy: "Another app is using your camera or microphone. Close it, then choose Try again.",
  insecure: "This page is not served over HTTPS, so the browser does not offer the camera or microphone.",
  failed: "The camera or microphone could not be started.",
};

const NOISE_KEY = "pairwise.noise-suppression";

export class LocalMedia {
  constructor() {
    this.stream = null;
    this.problem = null; // {kind, message} when capture failed or was partial
    this.cameraId = "";
    this.microphoneId = "";
    // The person's choice of the browser's noise suppression, kept for this tab: every
    // capture of the microphone asks for it (a device lost and back, a reload, Try again),
    // not only the live track it was switched on.
    this.noiseSuppression = sessionStorage.getItem(NOISE_KEY) !== "off";
    // Called with "audio" or "video" when a device stops by itself (unplugged, or its
    // permission revoked: Chromium then ends every track of that capture, not only that kind).
    this.onEnded = null;
  }

  /** Choose noise suppression for the captures from now on (the live track is the
   * caller's to change). */
  setNoiseSuppression(on) {
    this.noiseSuppression = on;
    sessionStorage.setItem(NOISE_KEY, on ? "on" : "off");
  }

  /** What to ask getUserMedia for `kind` ("audio" or "video"): the chosen device, and
   * for the microphone the chosen noise suppression. */
  constraints(kind, deviceId = kind === "video" ? this.cameraId : this.microphoneId) {
    const wanted = deviceId ? { deviceId: { exact: deviceId } } : {};
    if (kind === "audio") wanted.noiseSuppression = this.noiseSuppression;
    return Object.keys(wanted).length ? wanted : true;
  }

  get hasVideo() {
    return Boolean(this.stream && this.stream.getVideoTracks().length);
  }

  get hasAudio() {
    return Boolean(this.stream && this.stream.getAudioTracks().length);
  }

  /** Ask for camera and microphone; falls back to whichever of the two works. */
  async start() {
    this.stop();
    this.problem = null;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.problem = { kind: "insecure", message: EXPLAIN.insecure };
      return this;
    }
    const video = this.constraints("video");
    const audio = this.constraints("audio");
    try {
      this.stream = this.#watch(await navigator.mediaDevices.getUserMedia({ video, audio }));
      return this;
    } catch (err) {
      if (err.name === "NotAllowedError" || err.name === "SecurityError") {
        this.problem = { kind: "refused", message: EXPLAIN.refused };
        return this;
      }
      if (err.name === "NotReadableError" || err.name === "AbortError") {
        this.problem = { kind: "busy", message: EXPLAIN.busy };
        return this;
      }
    }
    // One of the two is missing (or its chosen device vanished): take the other alone.
    for (const [constraints, missing] of [[{ audio }, "camera"], [{ video }, "microphone"]]) {
      try {
        this.stream = this.#watch(await navigator.mediaDevices.getUserMedia(constraints));
        this.problem = { kind: `missing_${missing}`, message: EXPLAIN[`missing_${missing}`] };
        return this;
      } catch {
        // try the next
      }
    }
    this.problem = { kind: "missing_both", message: EXPLAIN.missing_both };
    return this;
  }

  /** Ask for one more device ("audio" or "video") in the room, e.g. "Start video" after
   * joining without a camera; true when this page now has it. */
  async add(kind) {
    if (!navigator.mediaDevices?.getUserMedia) return false;
    try {
      const got = await navigator.mediaDevices.getUserMedia({ [kind]: this.constraints(kind) });
      if (!this.stream) this.stream = new MediaStream();
      for (const track of this.#watch(got).getTracks()) this.stream.addTrack(track);
      if (this.problem && !this.problem.kind.startsWith("missing_")) this.problem = null;
      return true;
    } catch (err) {
      this.problem = { kind: err.name === "NotAllowedError" ? "refused" : "failed",
        message: err.name === "NotAllowedError" ? EXPLAIN.refused : EXPLAIN.failed };
      return false;
    }
  }

  /** After devices ended: drop the ended tracks and ask for each kind in `kinds` on its
   * own (so a refused camera does not take the microphone with it), keeping whether the
   * person had it switched off. Returns the kinds still missing. */
  async recover(kinds) {
    const live = (this.stream ? this.stream.getTracks() : []).filter((t) => t.readyState === "live");
    const stream = new MediaStream(live);
    const missing = [];
    for (const kind of kinds) {
      if (stream.getTracks().some((t) => t.kind === kind)) continue;
      try {
        const got = await navigator.mediaDevices.getUserMedia({ [kind]: this.constraints(kind) });
        for (const track of this.#watch(got).getTracks()) {
          track.enabled = this.#wasEnabled[kind] ?? true;
          stream.addTrack(track);
        }
      } catch (err) {
        missing.push(kind);
        this.problem = { kind: err.name === "NotAllowedError" ? "refused" : "failed",
          message: err.name === "NotAllowedError" ? EXPLAIN.refused : EXPLAIN.failed };
      }
    }
    if (!missing.length && this.problem && !this.problem.kind.startsWith("missing_")) this.problem = null;
    this.stream = stream.getTracks().length ? stream : null;
    return missing;
  }

  #wasEnabled = {};

  #watch(stream) {
    for (const track of stream.getTracks()) {
      track.addEventListener("ended", () => {
        this.#wasEnabled[track.kind] = track.enabled;
        if (this.stream?.getTracks().includes(track)) this.onEnded?.(track.kind);
      });
    }
    return stream;
  }

  async devices() {
    if (!navigator.mediaDevices?.enumerateDevices) return { cameras: [], microphones: [] };
    const all = await navigator.mediaDevices.enumerateDevices();
    return {
      cameras: all.filter((d) => d.kind === "videoinput" && d.deviceId),
      microphones: all.filter((d) => d.kind === "audioinput" && d.deviceId),
    };
  }

  /** The device in use for a kind ("video" or "audio"). */
  currentDevice(kind) {
    const track = this.stream && this.stream.getTracks().find((t) => t.kind === kind);
    return track ? track.getSettings().deviceId || "" : "";
  }

  setEnabled(kind, enabled) {
    for (const track of this.stream ? this.stream.getTracks() : []) {
      if (track.kind === kind) track.enabled = enabled;
    }
  }

  isEnabled(kind) {
    const track = this.stream && this.stream.getTracks().find((t) => t.kind === kind);
    return Boolean(track && track.enabled);
  }

  stop() {
    for (const track of this.stream ? this.stream.getTracks() : []) track.stop();
    this.stream = null;
  }
}

/** A microphone level meter (WebAudio AnalyserNode) drawn into a bar element. */
export class LevelMeter {
  constructor(bar) {
    this.bar = bar;
    this.context = null;
    this.frame = 0;
  }

  attach(stream) {
    this.detach();
    if (!stream || !stream.getAudioTracks().length) return;
    this.context = new AudioContext();
    const source = this.context.createMediaStreamSource(stream);
    const analyser = this.context.createAnalyser();
    analyser.fftSize = 512;
    source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const draw = () => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      // Speech sits around 0.02–0.2 RMS; a square root spreads that across the bar.
      const level = Math.min(1, Math.sqrt(rms * 5));
      this.bar.style.transform = `scaleX(${level.toFixed(3)})`;
      this.bar.dataset.level = level.toFixed(2);
      this.frame = requestAnimationFrame(draw);
    };
    this.context.resume().catch(() => {});
    draw();
  }

  detach() {
    cancelAnimationFrame(this.frame);
    if (this.context) this.context.close().catch(() => {});
    this.context = null;
    this.bar.style.transform = "scaleX(0)";
    this.bar.dataset.level = "0";
  }
}
