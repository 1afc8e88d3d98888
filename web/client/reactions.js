// Reactions and raised hands: a click sends a small signal to everyone (server events
// `reaction` and `hand`, docs/protocol.md); each shows on the sender's tile, a reaction
// for a few seconds and a hand until it is lowered. One that the server refuses (they share
// a rate limit) is said in a notice.

import { notice } from "./banner.js";

export const REACTIONS = {
  thumbs_up: { emoji: "👍", words: "a thumbs up" },
  clap: { emoji: "👏", words: "applause" },
  heart: { emoji: "❤️", words: "a heart" },
  laugh: { emoji: "😂", words: "a laugh" },
  surprised: { emoji: "😮", words: "surprise" },
  thinking: { emoji: "🤔", words: "a thinking face" },
};
const SHOWN_MS = 4000;

export class Reactions {
  /**
   * @param {object} o
   * @param {import("./socket.js").RoomSocket} o.socket
   * @param {import("./tiles.js").Tiles} o.tiles
   * @param {string} o.me
   * @param {(identity: string) => string} o.nameOf
   * @param {(text: string) => void} o.announce
   * @param {() => void} o.onHands  the set of raised hands changed
   */
  constructor({ socket, tiles, me, nameOf, announce, onHands }) {
    this.socket = socket;
    this.tiles = tiles;
    this.me = me;
    this.nameOf = nameOf;
    this.announce = announce;
    this.onHands = onHands;
    this.layer = document.getElementById("reaction-layer");
    this.handButton = document.getElementById("ctl-hand");
    this.handButton.addEventListener("click", () => this.toggleHand());
    for (const button of document.querySelectorAll("#react-menu [data-reaction]")) {
      button.addEventListener("click", () => this.send(button.dataset.reaction));
    }
    socket.on("reaction", ({ identity, name, reaction }) => this.#show(identity, name, reaction));
    socket.on("hand", ({ identity, name, raised }) => this.#hand(identity, name, raised));
  }

  /** After (re)joining: the hands already up. */
  async load() {
    try {
      const { hands } = await this.socket.request("hands", {});
      for (const identity of [...this.hands]) if (!hands.includes(identity)) this.#hand(identity, null, false, true);
      for (const identity of hands) this.#hand(identity, null, true, true);
    } catch {
      // an older server without hands: nobody's hand shows
    }
  }

  async send(reaction) {
    try {
      await this.socket.request("reaction", { reaction });
    } catch (err) {
      notice(err.code === "rate_limited" ? "Slow down: too many reactions at once" : `Reaction not sent: ${err.message}`);
    }
  }

  async toggleHand() {
    const raised = !this.hands.has(this.me);
    try {
      await this.socket.request("hand", { raised });
      this.#hand(this.me, null, raised, true);
    } catch (err) {
      notice(`Could not ${raised ? "raise" : "lower"} your hand: ${err.message}`);
    }
  }

  forget(identity) {
    if (this.hands.has(identity)) this.#hand(identity, null, false, true);
  }

  #show(identity, name, reaction) {
    const known = REACTIONS[reaction];
    if (!known) return;
    const bubble = document.createElement("span");
    bubble.className = "reaction-bubble";
    bubble.dataset.identity = identity;
    bubble.dataset.reaction = reaction;
    bubble.textContent = known.emoji;
    const label = document.createElement("span");
    label.className = "reaction-name";
    const bdi = document.createElement("bdi");
    bdi.textContent = identity === this.me ? "You" : name || this.nameOf(identity);
    label.append(bdi);
    bubble.append(label);
    // Spread bubbles across the stage so a burst does not stack on one spot.
    bubble.style.left = `${10 + Math.random() * 70}%`;
    this.layer.append(bubble);
    setTimeout(() => bubble.remove(), SHOWN_MS);
    if (identity !== this.me) this.announce(`${name || this.nameOf(identity)} sent ${known.words}`);
  }

  /** Raised hands, in the tiles' keeping (a hand can be up before its tile exists). */
  get hands() {
    return this.tiles.hands;
  }

  #hand(identity, name, raised, quiet = false) {
    if (raised === this.hands.has(identity)) return;
    this.tiles.setHand(identity, raised);
    if (identity === this.me) {
      this.handButton.setAttribute("aria-pressed", String(raised));
      this.handButton.textContent = raised ? "Lower hand" : "Raise hand";
      document.getElementById("hand-badge").hidden = !raised;
    } else if (!quiet) {
      const who = name || this.nameOf(identity);
      this.announce(raised ? `${who} raised their hand` : `${who} lowered their hand`);
    }
    this.onHands();
  }
}
