// Waiting between attempts to bring media back: 1, 2, 4, 8 then 10 s, each ±25 %
// jittered so that everyone who lost the same Wi-Fi does not retry in the same instant.

const FIRST_MS = 1000;
const CAP_MS = 10000;
const JITTER = 0.25;

export class Backoff {
  constructor({ first = FIRST_MS, cap = CAP_MS, random = Math.random } = {}) {
    this.first = first;
    this.cap = cap;
    this.random = random;
    this.failures = 0;
  }

  /** The wait before the next attempt; each call counts one more failure. */
  next() {
    const base = Math.min(this.cap, this.first * 2 ** this.failures);
    this.failures += 1;
    return Math.round(base * (1 - JITTER + 2 * JITTER * this.random()));
  }

  /** Media works again: the next outage starts from the shortest wait. */
  reset() {
    this.failures = 0;
  }
}
