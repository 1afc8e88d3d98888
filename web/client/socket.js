// The Socket.IO connection to the room (docs/protocol.md): requests as promises, and a
// rejoin on every (re)connect so the page never has to think about dropped sockets.
/* global io */

export class RequestError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const REQUEST_TIMEOUT_MS = 10000;
// Connection refusals that no retry can fix: the page says why and stops.
const FATAL_CODES = new Set(["token_missing", "token_invalid", "token_expired", "token_revoked"]);

export class RoomSocket extends EventTarget {
  #hidden = false; // the page went away with the socket open (pagehide)

  constructor(token) {
    super();
    this.socket = io(location.origin, {
      path: "/socket.io/",
      transports: ["websocket"],
      auth: { token },
      reconnectionDelay: 500,
      reconnectionDelayMax: 4000,
    });
    this.socket.on("connect", () => this.#emit("online"));
    // The browser's network is back: try now, not at the next backoff (up to 6 s away).
    // Disconnecting a socket that is not connected only drops its pending attempt.
    window.addEventListener("online", () => {
      if (this.socket.active && !this.socket.connected) {
        this.socket.disconnect();
        this.socket.connect();
      }
    });
    // Closing the tab, navigating away or reloading is leaving: the socket says goodbye
    // (a DISCONNECT packet, which the server takes as a leave) instead of just dropping,
    // which the others would see as "Reconnecting…" for the room's grace period (30 s).
    window.addEventListener("pagehide", () => {
      this.#hidden = this.socket.active;
      if (this.#hidden) this.socket.disconnect();
    });
    // Back from the back/forward cache: the page is live again, and so is its socket
    // (the room joins again on connect).
    window.addEventListener("pageshow", (event) => {
      if (event.persisted && this.#hidden) this.socket.connect();
      this.#hidden = false;
    });
    this.socket.on("disconnect", (reason) => {
      // "io server disconnect" means the server ended this session on purpose (replaced,
      // removed): socket.io does not retry, and neither do we.
      this.#emit("offline", { reason, final: reason === "io server disconnect" });
    });
    this.socket.on("connect_error", (err) => {
      const data = err.data || {};
      this.#emit("refused", {
        code: data.code || "unreachable",
        message: data.message || err.message,
        fatal: FATAL_CODES.has(data.code),
      });
    });
  }

  get connected() {
    return this.socket.connected;
  }

  /** Listen to a server event (participant_joined, chat, ...). */
  on(event, handler) {
    this.socket.on(event, handler);
  }

  /** Send a client event and resolve with its ack; an error ack rejects with RequestError. */
  request(event, payload, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (!this.socket.connected) {
      // socket.io would buffer the packet and send it on reconnect; we resend ourselves
      // (with the same client_id), so a buffered duplicate would only add noise.
      return Promise.reject(new RequestError("offline", "not connected"));
    }
    return new Promise((resolve, reject) => {
      this.socket.timeout(timeoutMs).emit(event, payload, (err, ack) => {
        if (err) reject(new RequestError("timeout", `no answer to ${event}`));
        else if (ack && ack.error) reject(new RequestError(ack.error.code, ack.error.message));
        else resolve(ack);
      });
    });
  }

  /** Drop the transport as a network fault would; socket.io reconnects by itself. */
  dropTransport() {
    this.socket.io.engine.close();
  }

  /** Reconnect after the server ended the session (for "use this tab instead"). */
  reconnect() {
    this.socket.connect();
  }

  close() {
    this.socket.disconnect();
  }

  #emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** The claims of a join token, for display only: the server is the one that verifies it. */
export function readToken(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      [...atob(part)].map((c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""),
    );
    return JSON.parse(json);
  } catch {
    return null;
  }
}
