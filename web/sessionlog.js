// Shared by the pair page and the program-health page: DOM building, API calls, SVG charts.
// Every text goes in through textContent, never innerHTML, and text people typed is isolated
// for bidirectional text (<bdi>, dir="auto").

const SVG = "http://www.w3.org/2000/svg";

/** An element with attributes and children (strings become text nodes). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

/** Text someone typed (a name, a title, a note), isolated for bidirectional text: a
 * U+202E in it cannot reverse the text around it. */
export function bdi(text) {
  return el("bdi", {}, String(text));
}

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  node.append(...children);
  return node;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Call the REST API with a bearer credential; JSON in, JSON (or text) out. */
export async function api(credential, method, path, body) {
  const headers = { Authorization: `Bearer ${credential}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const isJson = (response.headers.get("Content-Type") || "").includes("application/json");
  const payload = isJson ? await response.json() : await response.text();
  if (!response.ok) {
    const error = isJson && payload.error ? payload.error : { code: "http", message: response.statusText };
    throw new ApiError(response.status, error.code, error.message);
  }
  return payload;
}

/** Does something a person asked for; if it fails, says what (`doing`) and why right after
 * `place`, the form or buttons they used: on a phone the top of the page is out of sight,
 * and the notices there (parts that did not load) keep their Try again. Each error is its
 * own alert, placed new so that it is announced; the next try takes it away. Never
 * rejects: resolves to whether the work was done. */
export async function act(place, doing, work) {
  const said = () => (place.nextElementSibling?.classList.contains("action-error") ? place.nextElementSibling : null);
  said()?.remove();
  try {
    await work();
    return true;
  } catch (error) {
    said()?.remove(); // two tries at once leave one error
    place.after(el("p", { class: "error action-error", role: "alert" }, `${doing}: ${error.message}`));
    return false;
  }
}

/** Fetch an export and hand it to the browser as a download. */
export async function download(credential, path, filename) {
  const text = await api(credential, "GET", path);
  const blob = new Blob([typeof text === "string" ? text : JSON.stringify(text, null, 1)]);
  const link = el("a", { href: URL.createObjectURL(blob), download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

export function when(ts) {
  return ts ? new Date(ts * 1000).toLocaleString() : "–";
}

export function minutes(seconds) {
  return seconds === null || seconds === undefined ? "–" : `${Math.round(seconds / 60)} min`;
}

/**
 * A bar chart as SVG. bars: [{label, value}] (value null = no data).
 * `top` fixes the scale (e.g. 100 for percentages). `width`: the CSS pixels it is shown at
 * (at most 640), so one user unit is one pixel and its 11 px labels stay 11 px on a phone
 * (a 640-unit chart shown 358 px wide drew them at 6 px); labels that would overlap at
 * that width are thinned to every second, third… bar (each bar keeps its tooltip).
 */
export function barChart(bars, { title, unit = "", top = null, width: shown = 640 } = {}) {
  const width = Math.round(Math.min(640, Math.max(240, shown || 640))), height = 220, pad = 32;
  const values = bars.map((b) => b.value).filter((v) => v !== null);
  const ceiling = top ?? Math.max(1, ...values);
  const step = (width - 2 * pad) / Math.max(bars.length, 1);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title, class: "chart" });
  chart.append(svg("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis" }));
  chart.append(svg("text", { x: pad, y: 14 }, `${title} (max ${Math.round(ceiling)}${unit})`));
  const longest = Math.max(1, ...bars.map((b) => String(b.label).length));
  const every = Math.max(1, Math.ceil((longest * 7 + 6) / step)); // ~7 px a character at 11 px
  bars.forEach((bar, i) => {
    const x = pad + i * step;
    if (bar.value === null) {
      chart.append(svg("text", { x: x + step / 2, y: height - pad - 4, "text-anchor": "middle" }, "–"));
    } else {
      const h = (height - 2 * pad - 10) * (bar.value / ceiling);
      const rect = svg("rect", { x: x + step * 0.15, y: height - pad - h, width: step * 0.7, height: h, class: "bar" });
      rect.append(svg("title", {}, `${bar.label}: ${Math.round(bar.value * 10) / 10}${unit}`));
      chart.append(rect);
    }
    if (i % every === 0) chart.append(svg("text", { x: x + step / 2, y: height - pad + 14, "text-anchor": "middle" }, bar.label));
  });
  return chart;
}

/** A table from a header and rows of plain values; `empty` when there are no rows. */
export function table(header, rows, empty) {
  if (!rows.length) return el("p", { class: "muted" }, empty);
  return el("table", { class: "log-table" },
    el("thead", {}, el("tr", {}, ...header.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((row) => el("tr", {}, ...row.map((c) => el("td", { dir: "auto" }, String(c)))))));
}
