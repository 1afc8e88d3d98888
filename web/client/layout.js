// Where the tiles go. A 1:1 call shows the partner large (the whole picture, letterboxed,
// never cropped) with my own video small in a corner that I can drag elsewhere; a group
// shows the speaker large with everyone else in a strip ("speaker view"), or everyone the
// same size ("grid view"). The SFU's `active_speaker` event decides who the speaker is.
// While a shared screen is shown (screenshare.js puts it in `#screens`, first in the stage)
// the share is the large thing and everyone's tile goes into a strip beside or below it
// ("share" layout; style.css places the strip by the window's shape), except on a phone
// held upright: there the share takes the width and only its own height, and the tiles
// keep their usual arrangement in the tall space under it.

const CORNERS = ["bottom-right", "bottom-left", "top-left", "top-right"];
const CORNER_KEY = "pairwise.self-corner";
const UPRIGHT_PHONE = "(max-width: 820px) and (orientation: portrait)";

export class StageLayout {
  /**
   * @param {HTMLElement} container  the tiles' container
   * @param {import("./tiles.js").Tiles} tiles
   * @param {string} me  my identity
   */
  constructor(container, tiles, me) {
    this.container = container;
    this.tiles = tiles;
    this.me = me;
    this.view = "speaker"; // for groups: "speaker" or "grid"
    this.speaker = null; // who the SFU says is speaking
    this.featured = null; // whose tile is large (never me while someone else is here)
    this.corner = sessionStorage.getItem(CORNER_KEY) || "bottom-right";
    this.stage = container.parentElement;
    this.sharing = false; // a shared screen is shown in the stage
    this.upright = matchMedia(UPRIGHT_PHONE);
    this.upright.addEventListener("change", () => this.apply());
    this.#bindDrag();
    this.#watchShares();
  }

  /** Speaker view or grid (groups only; a 1:1 call is always partner large, me small). */
  setView(view) {
    this.view = view === "grid" ? "grid" : "speaker";
    this.apply();
  }

  /** The SFU names the participant now speaking: highlight them, and feature them. */
  setSpeaker(identity) {
    this.speaker = identity;
    if (identity && identity !== this.me && this.tiles.has(identity)) this.featured = identity;
    this.apply();
  }

  get mode() {
    return this.container.dataset.layout;
  }

  apply() {
    const ids = this.tiles.identities();
    const others = ids.filter((id) => id !== this.me);
    if (!others.includes(this.featured)) this.featured = others[0] || null;
    let mode = "solo";
    if (this.sharing && !this.upright.matches) mode = "share";
    else if (others.length === 1) mode = "one-to-one";
    else if (others.length > 1) mode = this.view;
    if (this.sharing) this.stage.dataset.share = "shown";
    else delete this.stage.dataset.share;
    this.container.dataset.layout = mode;
    this.container.dataset.count = String(Math.min(ids.length, 9));
    for (const id of ids) {
      const root = this.tiles.root(id);
      const self = id === this.me;
      const featured = mode === "solo" ? self : (mode === "one-to-one" || mode === "speaker") && id === this.featured;
      // Data attributes, not classes: a tile's class list says what it shows (has-video, ...).
      root.dataset.place = mode === "one-to-one" && self ? "float" : featured ? "featured"
        : mode === "speaker" || mode === "share" ? "strip" : "grid";
      root.dataset.speaking = String(id === this.speaker && others.length > 0);
      if (mode === "one-to-one" && self) {
        root.dataset.corner = this.corner;
        root.tabIndex = 0;
        root.setAttribute("aria-roledescription", "movable video");
      } else {
        delete root.dataset.corner;
        root.removeAttribute("tabindex");
        root.removeAttribute("aria-roledescription");
        root.style.removeProperty("transform");
      }
    }
    // The strip lists the others in a fixed order; the featured tile comes first in the DOM
    // for screen readers too.
    const featuredRoot = this.featured && mode === "speaker" ? this.tiles.root(this.featured) : null;
    if (featuredRoot && this.container.firstElementChild !== featuredRoot) this.container.prepend(featuredRoot);
    this.container.style.setProperty("--strip", String(Math.max(ids.length - 1, 1)));
  }

  /** screenshare.js shows and hides the shares on its own (it knows nothing of this
   * layout): the stage is watched for its `#screens` coming or going, and that for being
   * hidden (after the last share) or shown again. */
  #watchShares() {
    let watched = null;
    const observer = new MutationObserver(() => {
      const screens = this.stage.querySelector(":scope > .screens");
      if (screens && screens !== watched) {
        observer.observe(screens, { attributes: true, attributeFilter: ["hidden"] });
        watched = screens;
      }
      const sharing = Boolean(screens && !screens.hidden);
      if (sharing === this.sharing) return;
      this.sharing = sharing;
      this.apply();
    });
    observer.observe(this.stage, { childList: true });
  }

  /** Move my small video to a corner ("bottom-right", ...) or the next one. */
  moveSelf(corner = null) {
    const next = corner || CORNERS[(CORNERS.indexOf(this.corner) + 1) % CORNERS.length];
    this.corner = CORNERS.includes(next) ? next : "bottom-right";
    sessionStorage.setItem(CORNER_KEY, this.corner);
    this.apply();
  }

  /** Drag my small video (mouse, touch, pen); it settles in the nearest corner. Arrow keys
   * move it too while it has focus. */
  #bindDrag() {
    let drag = null;
    this.container.addEventListener("pointerdown", (event) => {
      const tile = event.target.closest('.tile[data-place="float"]');
      if (!tile) return;
      drag = { tile, x: event.clientX, y: event.clientY, id: event.pointerId };
      tile.setPointerCapture(event.pointerId);
      tile.dataset.dragging = "true";
    });
    this.container.addEventListener("pointermove", (event) => {
      if (!drag || event.pointerId !== drag.id) return;
      drag.tile.style.transform = `translate(${event.clientX - drag.x}px, ${event.clientY - drag.y}px)`;
    });
    const end = (event) => {
      if (!drag || event.pointerId !== drag.id) return;
      const box = this.container.getBoundingClientRect();
      const tile = drag.tile.getBoundingClientRect();
      const cx = tile.left + tile.width / 2 - box.left;
      const cy = tile.top + tile.height / 2 - box.top;
      delete drag.tile.dataset.dragging;
      drag.tile.style.removeProperty("transform");
      drag = null;
      const vertical = cy < box.height / 2 ? "top" : "bottom";
      const horizontal = cx < box.width / 2 ? "left" : "right";
      this.moveSelf(`${vertical}-${horizontal}`);
    };
    this.container.addEventListener("pointerup", end);
    this.container.addEventListener("pointercancel", end);
    this.container.addEventListener("keydown", (event) => {
      if (event.target.dataset?.place !== "float") return;
      const [v, h] = this.corner.split("-");
      const moves = { ArrowUp: ["top", h], ArrowDown: ["bottom", h], ArrowLeft: [v, "left"], ArrowRight: [v, "right"] };
      if (!moves[event.key]) return;
      event.preventDefault();
      this.moveSelf(moves[event.key].join("-"));
    });
  }
}
