// The pre-join media check: a throwaway connection to the SFU with one data channel
// (`media_probe`, docs/protocol-media.md). It tells someone before they join whether
// audio and video can connect from their network, and whether only through a relay.
import { diagnostics } from "./diagnostics.js";

const PROBE_TIMEOUT_MS = 12000;

/**
 * Resolves to { ok: true, path: "direct" | "relay" } or { ok: false, reason, dialin };
 * never rejects. The connection is closed as soon as the answer is known.
 */
export async function probeMedia(socket) {
  let pc = null;
  let dialin = null;
  try {
    const config = await socket.request("media_config", {});
    dialin = config.dialin || null;
    pc = new RTCPeerConnection({
      iceServers: config.ice_servers || [],
      iceTransportPolicy: diagnostics.forceRelay ? "relay" : "all",
      bundlePolicy: "max-bundle",
    });
    const channel = pc.createDataChannel("probe");
    const echoed = new Promise((resolve) => {
      channel.onopen = () => channel.send("probe");
      channel.onmessage = () => resolve(true);
      setTimeout(() => resolve(false), PROBE_TIMEOUT_MS);
    });
    await pc.setLocalDescription(await pc.createOffer());
    const answer = await socket.request("media_probe", { sdp: pc.localDescription.sdp, type: "offer" });
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    if (!(await echoed)) return { ok: false, reason: `no connection within ${PROBE_TIMEOUT_MS / 1000} s`, dialin };
    return { ok: true, path: await selectedPath(pc) };
  } catch (err) {
    return { ok: false, reason: err.message || String(err), dialin };
  } finally {
    if (pc) {
      pc.close();
      socket.request("media_probe_close", {}).catch(() => {});
    }
  }
}

/** "relay" when the connection runs through a TURN server, else "direct". */
async function selectedPath(pc) {
  const stats = await pc.getStats();
  for (const report of stats.values()) {
    if (report.type !== "transport" || !report.selectedCandidatePairId) continue;
    const pair = stats.get(report.selectedCandidatePairId);
    const local = pair && stats.get(pair.localCandidateId);
    if (local) return local.candidateType === "relay" ? "relay" : "direct";
  }
  return "direct";
}
