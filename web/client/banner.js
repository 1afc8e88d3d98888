// The room's two ways of showing news on screen: the one banner at the top of the room
// (what happened to your audio/video, and what you can do about it; it stays) and a
// notice (something you just did did not work; it goes away by itself).

// Long enough to read a sentence twice; the notice is announced as it appears as well.
const NOTICE_MS = 6000;

export class Banner {
  constructor() {
    this.root = document.getElementById("banner");
    this.title = document.getElementById("banner-title");
    this.text = document.getElementById("banner-text");
    this.dialin = document.getElementById("dialin");
    this.retry = document.getElementById("banner-retry");
    this.close = document.getElementById("banner-close");
    this.onRetry = null;
    this.retry.addEventListener("click", () => this.onRetry && this.onRetry());
    this.close.addEventListener("click", () => this.hide());
  }

  /**
   * @param {object} o
   * @param {string} o.title  one line: what state you are in
   * @param {string} o.text   why, and what to do
   * @param {"info"|"warning"|"progress"} [o.tone]
   * @param {(() => void)|null} [o.retry]  shows a "Try again" button
   * @param {{number: string, pin: string}|null} [o.dialin]
   */
  show({ title, text, tone = "info", retry = null, dialin = null }) {
    this.root.dataset.tone = tone;
    this.title.textContent = title;
    this.text.textContent = text;
    this.onRetry = retry;
    this.retry.hidden = !retry;
    this.close.hidden = tone === "progress";
    this.dialin.hidden = !dialin;
    if (dialin) {
      this.dialin.textContent = dialin.pin
        ? `Join by phone: call ${dialin.number} and enter PIN ${dialin.pin} followed by #.`
        : `Join by phone: call ${dialin.number}.`;
    }
    this.root.hidden = false;
  }

  hide() {
    this.root.hidden = true;
    this.onRetry = null;
  }

  get visible() {
    return !this.root.hidden;
  }
}

let current = null; // the notice on screen: {element, text, timer}

/**
 * Something you just did did not work ("Could not raise your hand: …"): shown over the
 * top of the stage, clear of the controls and their menus, for a few seconds. It is a
 * role=alert, so screen readers say it as it appears; the hidden announcer stays for
 * what others do. The same words again while they show keep them up longer instead of
 * being said again (a burst of refused clicks is one notice).
 * @param {string} text
 */
export function notice(text) {
  clearTimeout(current?.timer);
  if (current?.text !== text) {
    current?.element.remove();
    const element = document.createElement("p");
    element.className = "notice";
    element.setAttribute("role", "alert");
    element.textContent = text;
    document.getElementById("notices").append(element);
    current = { element, text, timer: null };
  }
  const shown = current;
  shown.timer = setTimeout(() => {
    shown.element.remove();
    if (current === shown) current = null;
  }, NOTICE_MS);
}
