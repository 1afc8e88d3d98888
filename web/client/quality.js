// Connection quality from getStats: loss and round-trip time turned into good / fair / poor.

const LOSS = { good: 2, fair: 8 }; // percent
const RTT = { good: 0.25, fair: 0.5 }; // seconds

function level(lossPercent, rttSeconds) {
  if (lossPercent <= LOSS.good && (rttSeconds ?? 0) <= RTT.good) return "good";
  if (lossPercent <= LOSS.fair && (rttSeconds ?? 0) <= RTT.fair) return "fair";
  return "poor";
}

function describe(lossPercent, rttSeconds) {
  const parts = [`${lossPercent.toFixed(0)}% loss`];
  if (rttSeconds != null) parts.push(`${Math.round(rttSeconds * 1000)} ms`);
  return parts.join(", ");
}

/** My connection to the SFU: the selected candidate pair's RTT and what the SFU reports lost. */
export function connectionQuality(stats, previous) {
  let rtt = null;
  let lost = 0;
  let sent = 0;
  for (const stat of stats.values()) {
    if (stat.type === "candidate-pair" && stat.nominated && stat.state === "succeeded") {
      rtt = stat.currentRoundTripTime ?? rtt;
    }
    if (stat.type === "remote-inbound-rtp") lost = Math.max(lost, (stat.fractionLost || 0) * 100);
    if (stat.type === "outbound-rtp") {
      sent += (stat.packetsSent || 0) - (previous.get(stat.id)?.packetsSent || 0);
    }
  }
  if (rtt === null && sent === 0) return { level: "unknown", detail: "" };
  return { level: level(lost, rtt), detail: describe(lost, rtt) };
}

/** What arrives from one remote track: packets lost against packets received since last time. */
export function inboundQuality(stats, previous, trackId) {
  for (const stat of stats.values()) {
    if (stat.type !== "inbound-rtp" || stat.trackIdentifier !== trackId) continue;
    const before = previous.get(stat.id);
    if (!before) return null;
    const received = stat.packetsReceived - before.packetsReceived;
    const lost = Math.max(0, stat.packetsLost - before.packetsLost);
    // Nothing arriving is normal while the sender is muted or has the camera off.
    if (received + lost === 0) return { level: "unknown", detail: "" };
    const loss = (lost / (received + lost)) * 100;
    return { level: level(loss, null), detail: describe(loss, null) };
  }
  return null;
}

const RANK = { unknown: 0, poor: 1, fair: 2, good: 3 };

/** A person's quality over their tracks: the best one speaks for the connection. */
export function best(qualities) {
  return qualities.reduce((a, b) => (RANK[b.level] > RANK[a.level] ? b : a), { level: "unknown", detail: "" });
}
