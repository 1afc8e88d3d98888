// The join page: read the token from the link, check camera, microphone and connection,
// then enter the room on the same page.

import { diagnostics } from "./client/diagnostics.js";
import { LevelMeter, LocalMedia } from "./client/localmedia.js";
import { offerFeedback } from "./client/feedback.js";
import { Room } from "./client/room.js";
import { probeMedia } from "./client/probe.js";
import { readToken, RoomSocket } from "./client/socket.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "pairwise.token";
// Set while this tab is in the meeting: a reload goes straight back in, with the same
// camera and microphone choices, instead of stopping at the pre-join page.
const IN_ROOM_KEY = "pairwise.in-room";
const PUBLISHING_ROLES = new Set(["mentor", "mentee", "operator"]);

function announce(text) {
  // Re-setting the same text is not announced twice; a fresh node is.
  const line = document.createElement("p");
  line.textContent = text;
  $("announcer").replaceChildren(line);
}

/** The token from the link's fragment (kept for reloads, then taken out of the address bar). */
function takeToken() {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    sessionStorage.setItem(TOKEN_KEY, fromLink);
    history.replaceState(null, "", location.pathname + location.search);
    return fromLink;
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function setCheck(id, state, text) {
  const item = $(id);
  item.dataset.state = state;
  item.querySelector(".check-text").textContent = text;
}

function setStatus(state, text) {
  const status = $("conn-status");
  status.dataset.state = state;
  status.textContent = text;
}

function showEnded(title, text) {
  $("prejoin").hidden = true;
  $("room").hidden = true;
  $("ended").hidden = false;
  $("ended-title").textContent = title;
  $("ended-text").textContent = text;
  setStatus("ended", "Not connected");
  $("rejoin-button").focus();
}

class PreJoin {
  constructor(socket, claims, token) {
    this.socket = socket;
    this.claims = claims;
    this.token = token;
    this.local = new LocalMedia();
    this.meter = new LevelMeter($("meter-bar"));
    this.canPublish = PUBLISHING_ROLES.has(claims.role);
    this.wantCamera = true;
    this.wantMic = true;
    this.probed = false;
    $("pre-cam").addEventListener("click", () => this.#toggle("video"));
    $("pre-mic").addEventListener("click", () => this.#toggle("audio"));
    $("media-retry").addEventListener("click", () => this.startPreview());
    $("camera-select").addEventListener("change", (e) => { this.local.cameraId = e.target.value; this.startPreview(); });
    $("mic-select").addEventListener("change", (e) => { this.local.microphoneId = e.target.value; this.startPreview(); });
    $("join-button").addEventListener("click", () => this.join());
  }

  /** Start (or restart) the preview; `join` waits for the latest one to settle. */
  startPreview() {
    this.previewing = this.#preview();
    return this.previewing;
  }

  /** Straight into text chat (`#mode=text`, /me's "Chat"): no camera or microphone asked
   * for, and the room opens on the chat, even on a phone. */
  textOnly() {
    this.text = true;
    this.wantCamera = false;
    this.wantMic = false;
    this.resuming = true;
  }

  async #preview() {
    if (this.text) {
      this.#showProblem(null);
      $("preview-off").textContent = "Joining in text chat";
      setCheck("check-media", "ok", "Camera and microphone: off, you are joining the chat");
      this.#refresh();
      return;
    }
    if (!this.canPublish) {
      this.#showProblem(null);
      $("preview-off").textContent = "Observers join without camera or microphone";
      setCheck("check-media", "ok", "Audio and video: you will watch and read along");
      this.#refresh();
      return;
    }
    $("media-retry").disabled = true;
    await this.local.start();
    $("media-retry").disabled = false;
    this.#showProblem(this.local.problem);
    this.local.setEnabled("video", this.wantCamera);
    this.local.setEnabled("audio", this.wantMic);
    $("preview-video").srcObject = this.local.hasVideo ? this.local.stream : null;
    this.meter.attach(this.local.stream);
    await this.#fillPickers();
    this.#refresh();
  }

  async join() {
    $("join-button").disabled = true;
    $("join-button").textContent = "Joining…";
    await this.previewing; // a quick click must not join before the camera answered
    this.meter.detach();
    $("preview-video").srcObject = null;
    sessionStorage.setItem(IN_ROOM_KEY, JSON.stringify({ room: this.claims.room,
      camera: this.wantCamera, mic: this.wantMic, text: Boolean(this.text) }));
    if (!this.wantCamera) this.#dropTracks("video");
    if (!this.wantMic) this.#dropTracks("audio");
    $("prejoin").hidden = true;
    const ended = (title, text) => {
      sessionStorage.removeItem(IN_ROOM_KEY);
      showEnded(title, text);
      // Someone who chose to leave is asked how the meeting went (pairs' rooms only).
      if (room.left) offerFeedback(this.token, this.claims.room);
    };
    const room = new Room({
      socket: this.socket, claims: this.claims, local: this.local, announce, onEnded: ended,
      probe: () => this.probeResult,
    });
    room.enter();
    if (this.text) room.panels.show("chat");
    if (diagnostics.debugHandle) {
      window.pairwiseDebug = {
        room,
        dropSocket: () => this.socket.dropTransport(),
        state: () => ({ mode: room.media.mode, connected: this.socket.connected, joined: room.joined,
          trace: room.media.trace }),
      };
    }
    $("main").focus({ preventScroll: true });
    window.scrollTo(0, 0); // the room opens at its top, whatever the pre-join page's scroll was
  }

  /** Who is already in the room, before joining (the server's `lobby`). */
  async showWhoIsHere() {
    let people, title;
    try {
      ({ participants: people, title } = await this.socket.request("lobby", {}));
    } catch {
      nameRoom(this.claims, null);
      return; // an older server: the placeholder stays
    }
    nameRoom(this.claims, title);
    const items = people.map((p) => {
      const li = document.createElement("li");
      const name = document.createElement("bdi");
      name.textContent = p.name;
      li.append(name, ` (${p.role})`);
      return li;
    });
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "Nobody yet: you are the first.";
      items.push(li);
    }
    $("who-is-here").replaceChildren(...items);
    clearTimeout(this.lobbyTimer); // kept fresh while the person waits here
    if (!$("prejoin").hidden) this.lobbyTimer = setTimeout(() => this.showWhoIsHere(), 5000);
  }

  /** After a reload of a tab that was in the meeting: join again as before, no click. */
  resume() {
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(IN_ROOM_KEY) || "null");
    } catch {
      // a damaged value: show the pre-join page as usual
    }
    if (!saved || saved.room !== this.claims.room) return false;
    this.wantCamera = saved.camera !== false;
    this.wantMic = saved.mic !== false;
    this.text = saved.text === true;
    this.resuming = true;
    return true;
  }

  serverReachable(ok, text) {
    setCheck("check-server", ok ? "ok" : "failed", text);
    this.#refresh();
    if (ok && this.resuming) {
      this.resuming = false;
      this.join();
    }
    if (ok && !$("prejoin").hidden) this.showWhoIsHere();
    if (ok && !this.probed) {
      this.probed = true;
      this.#checkMediaPath();
    }
  }

  /** Whether audio and video can connect from this network (once, before joining). */
  async #checkMediaPath() {
    setCheck("check-network", "pending", "Media connection: checking…");
    const result = await probeMedia(this.socket);
    this.probeResult = result;
    this.#refresh();
    if (result.ok) {
      setCheck("check-network", "ok", result.path === "relay"
        ? "Media connection: working (through a relay server)" : "Media connection: working");
      return;
    }
    const phone = result.dialin
      ? ` or by phone: call ${result.dialin.number}${result.dialin.pin ? `, PIN ${result.dialin.pin}` : ""}`
      : "";
    setCheck("check-network", "failed",
      `Media connection: audio and video cannot connect from this network. You can still join in chat${phone}.`);
    $("check-network").title = result.reason; // the technical reason, for support
  }

  #toggle(kind) {
    if (kind === "video") this.wantCamera = !this.wantCamera;
    else this.wantMic = !this.wantMic;
    this.local.setEnabled(kind, kind === "video" ? this.wantCamera : this.wantMic);
    this.#refresh();
  }

  #dropTracks(kind) {
    for (const track of this.local.stream ? this.local.stream.getTracks() : []) {
      if (track.kind === kind) {
        track.stop();
        this.local.stream.removeTrack(track);
      }
    }
  }

  async #fillPickers() {
    const { cameras, microphones } = await this.local.devices();
    const fill = (select, devices, current, noun) => {
      select.replaceChildren(...devices.map((d, i) => {
        const option = new Option(d.label || `${noun} ${i + 1}`, d.deviceId);
        option.selected = d.deviceId === current;
        return option;
      }));
      if (!devices.length) select.append(new Option(`No ${noun.toLowerCase()} found`, ""));
      select.disabled = devices.length < 2;
    };
    fill($("camera-select"), cameras, this.local.currentDevice("video"), "Camera");
    fill($("mic-select"), microphones, this.local.currentDevice("audio"), "Microphone");
  }

  #showProblem(problem) {
    $("media-problem").hidden = !problem;
    $("media-problem-text").textContent = problem ? problem.message : "";
  }

  /** The toggles, the preview and the sentence saying how you will join. */
  #refresh() {
    const camera = this.local.hasVideo && this.wantCamera;
    const mic = this.local.hasAudio && this.wantMic;
    for (const [id, on, has, noun] of [["pre-cam", camera, this.local.hasVideo, "Camera"],
      ["pre-mic", mic, this.local.hasAudio, "Microphone"]]) {
      $(id).setAttribute("aria-pressed", String(on));
      $(id).textContent = `${noun} ${on ? "on" : "off"}`;
      $(id).disabled = !has;
    }
    $("preview").classList.toggle("has-video", camera);
    if (this.canPublish) $("preview-off").textContent = this.local.hasVideo ? "Camera is off" : "No camera";
    // Honest about the rung you start on: the media check decides it as much as the devices.
    const blocked = this.probeResult && !this.probeResult.ok && (camera || mic);
    $("join-mode").textContent = blocked
      ? "You will join in text chat: audio and video cannot connect from this network right now. "
        + `Your ${camera ? "camera and microphone switch on by themselves" : "microphone switches on by itself"} as soon as media can connect.`
      : camera ? "You will join with camera and microphone."
        : mic ? "You will join with audio only."
          : "You will join in text chat. You can turn on your microphone or camera in the meeting.";
    const serverOk = $("check-server").dataset.state === "ok";
    $("join-button").disabled = !serverOk;
    if (this.canPublish && !this.local.problem) {
      setCheck("check-media", "ok", "Camera and microphone: working");
    } else if (this.canPublish) {
      setCheck("check-media", "warning", "Camera or microphone: not available (you can still join)");
    }
  }
}

/** The pre-join page names the room as its header will once in: a pair's room by the pair's
 * title (typed by people: isolated), a room no pair owns by its id. */
function nameRoom(claims, title) {
  const isolated = (text) => Object.assign(document.createElement("bdi"), { textContent: text });
  $("room-name").replaceChildren(isolated(title || claims.room));
  $("joining-as").replaceChildren("Joining ", isolated(title || claims.room), " as ",
    isolated(claims.name), ` (${claims.role}).`);
}

function main() {
  const textMode = new URLSearchParams(location.hash.slice(1)).get("mode") === "text";
  const token = takeToken();
  const claims = token && readToken(token);
  if (!claims) {
    showEnded("This link is missing its key",
      "Open the full join link from your invitation. If it still does not work, ask the program team for a new one.");
    $("rejoin-button").hidden = true;
    return;
  }
  $("joining-as").textContent = `Joining as ${claims.name} (${claims.role}).`; // the room's name follows
  $("rejoin-button").addEventListener("click", () => location.reload());

  const socket = new RoomSocket(token);
  const prejoin = new PreJoin(socket, claims, token);
  socket.addEventListener("online", () => {
    setStatus("online", "Connected");
    prejoin.serverReachable(true, "Server: reachable");
  });
  socket.addEventListener("offline", () => setStatus("reconnecting", "Reconnecting…"));
  socket.addEventListener("refused", ({ detail }) => {
    if (detail.fatal) {
      socket.close();
      showEnded("This join link does not work", `${detail.message}. Ask the program team for a new link.`);
      $("rejoin-button").hidden = true;
      return;
    }
    setStatus("reconnecting", "Reconnecting…");
    prejoin.serverReachable(false, "Server: not reachable yet, still trying…");
  });
  if (textMode) prejoin.textOnly();
  else prejoin.resume();
  prejoin.startPreview();
}

main();
