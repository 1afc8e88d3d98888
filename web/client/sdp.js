// SDP adjustments between a browser and the SFU (aiortc).
//
// When the SFU re-offers (media_renegotiate, to add forwarded tracks) aiortc numbers
// payload types and header extensions its own way, for every m-line. A browser refuses a
// header-extension id that changes meaning inside a bundle, and the SFU loses a
// publisher's frames when its payload types change under it. So the first offer already
// speaks aiortc's numbering: Opus as 96, VP8 as 97 with RTX 98, and aiortc's extension ids.

const AIORTC = {
  audio: {
    codecs: [["opus/48000", 96]],
    extensions: [[1, "urn:ietf:params:rtp-hdrext:sdes:mid"], [2, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"]],
  },
  video: {
    codecs: [["vp8/90000", 97]],
    rtx: { 97: 98 }, // RTX payload type for each codec, by the codec's new payload type
    extensions: [[1, "urn:ietf:params:rtp-hdrext:sdes:mid"], [3, "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"]],
  },
};

const PT_LINE = /^a=(rtpmap|fmtp|rtcp-fb):(\d+)(.*)$/;

/** Old → new payload types for one m-section; payload types not in it are dropped. */
function payloadMap(lines, kind) {
  const wanted = AIORTC[kind];
  const map = new Map();
  const rtpmaps = lines.map((l) => l.match(/^a=rtpmap:(\d+) ([^/]+\/\d+)/)).filter(Boolean);
  for (const [name, pt] of wanted.codecs) {
    const found = rtpmaps.find((m) => m[2].toLowerCase() === name);
    if (found && !map.has(found[1])) map.set(found[1], pt);
  }
  for (const line of lines) {
    const apt = line.match(/^a=fmtp:(\d+) apt=(\d+)$/);
    if (apt && map.has(apt[2]) && wanted.rtx?.[map.get(apt[2])]) {
      map.set(apt[1], wanted.rtx[map.get(apt[2])]);
    }
  }
  return map;
}

function rewriteSection(lines, kind) {
  const wanted = AIORTC[kind];
  const map = payloadMap(lines, kind);
  if (!wanted || map.size === 0) return lines;
  const out = [];
  for (const line of lines) {
    if (line.startsWith("m=")) {
      const [media, port, proto] = line.split(" ");
      out.push([media, port, proto, ...map.values()].join(" "));
      continue;
    }
    if (line.startsWith("a=extmap:")) continue;
    const pt = line.match(PT_LINE);
    if (pt) {
      if (!map.has(pt[2])) continue;
      const rest = pt[3].replace(/apt=(\d+)/, (_, old) => `apt=${map.get(old) ?? old}`);
      out.push(`a=${pt[1]}:${map.get(pt[2])}${rest}`);
      continue;
    }
    out.push(line);
    if (line.startsWith("a=mid:")) {
      for (const [id, uri] of wanted.extensions) out.push(`a=extmap:${id} ${uri}`);
    }
  }
  return out;
}

/** The browser's offer renumbered the way aiortc numbers its own offers. */
export function alignWithSfu(sdp) {
  const sections = [[]];
  for (const line of sdp.split("\r\n")) {
    if (line.startsWith("m=")) sections.push([]);
    sections[sections.length - 1].push(line);
  }
  return sections
    .map((lines, i) => (i === 0 ? lines : rewriteSection(lines, lines[0].slice(2).split(" ")[0])))
    .flat()
    .join("\r\n");
}
