// The one banner at the top of the room: what happened to your audio/video, and what
// you can do about it.

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
