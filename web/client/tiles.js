// One tile per participant: their video (or initials), name, mic state, media-mode badge,
// connection quality, and what is going on with their video: "Video paused" when it
// stopped against their wish (a step down, or frames that stopped arriving) instead of
// a frozen last frame, but only the badge and their initials when they chose audio only
// (or text) themselves, "Paused: you chose audio only" on every tile while I did,
// "Reconnecting…" while their connection is being rebuilt,
// "Video not supported by this browser" when the SFU cannot forward it to me (VP9 or AV1),
// and "Paused: your connection is slow" when the SFU stopped it to me alone
// because my link could not carry even its smallest version (`media_paused`).

/** What a camera tile or a shared screen says while the SFU holds it back for my link. */
export const LINK_PAUSED = {
  text: "Paused: your connection is slow",
  why: "Audio goes on. The video comes back by itself when your connection allows it.",
};

const MODE_LABELS = { video: "Video", audio: "Audio only", text: "Text chat", phone: "Phone" };
const QUALITY_LABELS = {
  good: "Connection good", fair: "Connection unstable", poor: "Connection poor",
  unknown: "Connection not measured",
};

function initials(name) {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  return (parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || "?")[0])
    .toUpperCase();
}

function span(className, text = "") {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}

export class Tiles {
  constructor(container, me) {
    this.container = container;
    this.me = me;
    this.tiles = new Map(); // identity → {root, video, ...}
    this.receivingVideo = true; // false while I chose audio only: nobody's video comes
    // Raised hands, tile or not: a hand can be up before its tile exists (I joined while
    // its owner's connection was down, within the room's grace), and shows when it comes.
    this.hands = new Set();
  }

  /** Add or update a participant ({identity, name, role, media_mode, presence}). */
  upsert(person) {
    let tile = this.tiles.get(person.identity);
    if (!tile) {
      tile = this.#create(person);
      this.tiles.set(person.identity, tile);
      this.setQuality(person.identity, "unknown");
      if (person.identity === this.me) this.container.prepend(tile.root);
      else this.container.append(tile.root);
    }
    tile.person = { ...tile.person, ...person };
    this.setMode(person.identity, tile.person.media_mode);
    tile.root.dataset.presence = tile.person.presence || "online";
    this.#layout();
    return tile;
  }

  remove(identity) {
    const tile = this.tiles.get(identity);
    if (!tile) return;
    tile.root.remove();
    this.tiles.delete(identity);
    this.#layout();
  }

  has(identity) {
    return this.tiles.has(identity);
  }

  identities() {
    return [...this.tiles.keys()];
  }

  /** A tile's element (for the layout). */
  root(identity) {
    return this.tiles.get(identity)?.root || null;
  }

  /** Every tile's <video> (they play the participants' audio too: the speaker choice). */
  videos() {
    return [...this.tiles.values()].map((tile) => tile.video);
  }

  /** The video of whom the stage features, for picture-in-picture. */
  stream(identity) {
    return this.tiles.get(identity)?.stream || null;
  }

  /** A raised hand shows on the tile until lowered. */
  setHand(identity, raised) {
    if (raised) this.hands.add(identity);
    else this.hands.delete(identity);
    const tile = this.tiles.get(identity);
    if (!tile) return;
    tile.hand.hidden = !raised;
    tile.root.dataset.hand = String(raised);
    this.#describe(tile);
  }

  /** Their media mode; `choice` (from `media_mode`) tells their own choice from a step
   * down. Without it (a join, a presence update) the last one known for that mode holds. */
  setMode(identity, mode, choice = null) {
    const tile = this.tiles.get(identity);
    if (!tile) return;
    tile.person.media_mode = mode;
    if (choice !== null) tile.chosenMode = choice ? mode : null;
    tile.root.dataset.mode = mode;
    tile.badge.dataset.mode = mode;
    tile.badge.textContent = MODE_LABELS[mode] || mode;
    this.#refreshVideo(tile);
  }

  /** Their video decodes no new frames although they should be sending it. */
  setStalled(identity, stalled) {
    const tile = this.tiles.get(identity);
    if (!tile || tile.stalled === stalled) return;
    tile.stalled = stalled;
    this.#refreshVideo(tile);
  }

  /** Their connection dropped and is being rebuilt (or the server holds their place). */
  setReconnecting(identity, on) {
    const tile = this.tiles.get(identity);
    if (!tile || Boolean(tile.reconnecting) === on) return;
    tile.reconnecting = on;
    tile.root.classList.toggle("reconnecting", on);
    this.#refreshVideo(tile);
  }

  isReconnecting(identity) {
    return Boolean(this.tiles.get(identity)?.reconnecting);
  }

  /** I chose audio only: the SFU sends me nobody's video, so no tile may show a frozen frame. */
  setReceivingVideo(on) {
    this.receivingVideo = on;
    for (const tile of this.tiles.values()) this.#refreshVideo(tile);
  }

  /** The SFU does not forward their video to me: it is in `codec` (VP9, AV1), which this
   * browser did not offer (`media_unavailable`). Holds until a video track of theirs comes. */
  setUnavailable(identity, codec) {
    const tile = this.tiles.get(identity);
    if (!tile) return;
    tile.unavailable = codec;
    this.#refreshVideo(tile);
  }

  /** The SFU stopped (or resumed) their video to me alone: my link could not carry it. */
  setLinkPaused(identity, paused) {
    const tile = this.tiles.get(identity);
    if (!tile || Boolean(tile.linkPaused) === paused) return;
    tile.linkPaused = paused;
    this.#refreshVideo(tile);
  }

  /** A MediaStream to show on the tile (null to show initials). Local video stays muted. */
  setStream(identity, stream) {
    const tile = this.tiles.get(identity);
    if (!tile) return;
    tile.stream = stream;
    if (stream?.getVideoTracks().some((t) => t.readyState === "live")) tile.unavailable = null;
    if (tile.video.srcObject !== stream) tile.video.srcObject = stream;
    if (stream) tile.video.play().catch(() => {}); // autoplay may wait for a gesture
    this.#refreshVideo(tile);
  }

  /** true / false, or null when unknown (the protocol does not carry others' mute state). */
  setMic(identity, on) {
    const tile = this.tiles.get(identity);
    if (!tile) return;
    tile.mic.dataset.state = on === null ? "unknown" : on ? "on" : "off";
    tile.mic.textContent = on === false ? "Muted" : "";
    tile.mic.hidden = on !== false; // only the exception is worth a label
    this.#describe(tile);
  }

  setQuality(identity, level, detail = "") {
    const tile = this.tiles.get(identity);
    if (!tile) return;
    tile.quality.dataset.quality = level;
    const label = QUALITY_LABELS[level] + (detail ? ` (${detail})` : "");
    tile.quality.title = label;
    tile.quality.setAttribute("aria-label", label);
  }

  #create(person) {
    const root = document.createElement("article");
    root.className = "tile";
    root.dataset.identity = person.identity;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = person.identity === this.me; // never echo my own microphone
    video.className = "tile-video";
    if (person.identity === this.me) video.classList.add("mirror");
    const avatar = span("avatar", initials(person.name));
    avatar.setAttribute("aria-hidden", "true");
    const bar = document.createElement("div");
    bar.className = "tile-bar";
    // The name is isolated for bidirectional text: a right-to-left (or U+202E) name
    // cannot reorder "(you)" or anything after it.
    const name = span("tile-name");
    const bdi = document.createElement("bdi");
    bdi.textContent = person.name;
    name.append(bdi);
    if (person.identity === this.me) name.append(" (you)");
    const mic = span("mic");
    mic.hidden = true;
    const state = span("tile-state");
    state.hidden = true;
    const badge = span("badge");
    const hand = span("hand", "✋");
    hand.hidden = !this.hands.has(person.identity);
    hand.setAttribute("aria-hidden", "true");
    root.dataset.hand = String(!hand.hidden);
    const quality = span("quality");
    quality.setAttribute("role", "img");
    for (let i = 0; i < 3; i += 1) quality.append(document.createElement("i"));
    bar.append(hand, name, mic, badge, state, quality);
    root.append(video, avatar, bar);
    const tile = { root, video, avatar, name, mic, badge, state, quality, hand, person: { ...person }, stream: null };
    // The first frame of a stream (and a new stream's emptied element) changes what shows.
    for (const event of ["loadeddata", "emptied"]) video.addEventListener(event, () => this.#refreshVideo(tile));
    return tile;
  }

  #refreshVideo(tile) {
    const mode = tile.person.media_mode;
    const mine = tile.person.identity === this.me;
    const track = Boolean(tile.stream && tile.stream.getVideoTracks().some((t) => t.enabled));
    // Not before its first frame: a new stream's element is black until one is decoded.
    const painted = tile.video.readyState >= HTMLMediaElement.HAVE_CURRENT_DATA;
    const shown = track && painted && (mode === "video" || mine) && !tile.cameraOff
      && !tile.reconnecting && (mine || (this.receivingVideo && !tile.stalled && !tile.linkPaused));
    tile.root.classList.toggle("has-video", shown);
    if (shown) tile.hadVideo = true;
    const belowByChoice = mode !== "video" && tile.chosenMode === mode; // no fault to report
    let state = "";
    let why = "";
    if (tile.reconnecting) state = "Reconnecting…";
    else if (!mine && mode === "video" && tile.cameraOff) state = "Camera off";
    else if (!mine && mode === "video" && tile.unavailable) {
      state = "Video not supported by this browser";
      why = `They send ${tile.unavailable}, which this browser cannot play`;
    } else if (!mine && mode === "video" && tile.linkPaused && this.receivingVideo) {
      state = LINK_PAUSED.text;
      why = LINK_PAUSED.why;
    } else if (!mine && mode === "video" && !this.receivingVideo) {
      state = "Paused: you chose audio only";
    } else if (!mine && !shown && tile.hadVideo && mode !== "phone" && !belowByChoice && !(track && !painted)) {
      state = "Video paused"; // (a stream waiting for its first frame is starting, not paused)
    }
    tile.state.textContent = state;
    tile.state.hidden = !state;
    tile.state.title = why;
    const paused = state === "Video paused" || state === LINK_PAUSED.text;
    tile.root.dataset.video = shown ? "playing" : paused ? "paused" : "off";
    this.#describe(tile);
  }

  /** My own camera switched off: show initials instead of a frozen frame. */
  setCameraOff(identity, off) {
    const tile = this.tiles.get(identity);
    if (!tile) return;
    tile.cameraOff = off;
    this.#refreshVideo(tile);
  }

  #describe(tile) {
    const p = tile.person;
    const mic = tile.mic.hidden ? "" : ", muted";
    const state = (tile.state.hidden ? "" : `, ${tile.state.textContent.toLowerCase()}`)
      + (tile.hand.hidden ? "" : ", hand raised");
    tile.root.setAttribute("aria-label", `${p.name}${p.identity === this.me ? " (you)" : ""}, ${p.role}, ${MODE_LABELS[p.media_mode] || p.media_mode}${mic}${state}`);
  }

  #layout() {
    this.container.dataset.count = String(Math.min(this.tiles.size, 9));
    this.onLayout?.();
  }
}
