// Participants: import a CSV or JSON file (each bad row shown in place, fixed there and sent
// again), the list of everyone, edit a profile, deactivate and reactivate.

import { bdi, el, when } from "../sessionlog.js";
import { call, enc } from "./api.js";
import { $, action, busy, fail, grid, say } from "./ui.js";

const HIDDEN_FIELDS = new Set(["active", "deactivated_at"]);
const EDITABLE = ["name", "role", "timezone", "availability", "skills", "goals", "languages", "seniority", "capacity"];

async function send(body) {
  return busy($("import-progress"), () => call("POST", "/api/v1/console/participants/import", body));
}

function fieldInput(rowNumber, name, value) {
  const id = `fix-${rowNumber}-${name}`;
  return el("div", { class: "console-field" },
    el("label", { for: id }, name),
    el("input", { id, name, value: Array.isArray(value) ? value.join("; ") : (value ?? ""), dir: "auto" }));
}

/** The import's outcome: a count, and each bad row with its error and its fields to fix. */
function renderOutcome(outcome) {
  const bad = outcome.rows.filter((r) => !r.ok);
  say(`Imported ${outcome.imported} ${outcome.imported === 1 ? "person" : "people"}; ${bad.length} ${bad.length === 1 ? "row needs" : "rows need"} fixing.`);
  if (!bad.length) {
    $("import-result").replaceChildren(el("p", { class: "console-ok" }, `${outcome.imported} imported, no problems.`));
    return;
  }
  const forms = bad.map((r) => {
    const fields = { ...r.fields, email: r.email ?? "" };
    return el("fieldset", { class: "console-bad-row", "data-row": r.row },
      el("legend", {}, `Row ${r.row}`, r.identity ? " · " : "", r.identity ? bdi(r.identity) : ""),
      el("p", { class: "error", id: `row-error-${r.row}` }, r.error),
      el("div", { class: "console-fields" }, ...Object.entries(fields).map(([k, v]) => fieldInput(r.row, k, v))));
  });
  const again = action("Import the fixed rows", async () => {
    const rows = forms.map((form) => ({
      row: Number(form.dataset.row),
      fields: Object.fromEntries([...form.querySelectorAll("input")].map((i) => [i.name, i.value])),
    }));
    renderOutcome(await send({ format: "rows", rows }));
    await show();
  }, { class: "primary", "data-manager": true });
  $("import-result").replaceChildren(
    el("p", {}, `${outcome.imported} imported. Fix ${bad.length === 1 ? "this row" : "these rows"} and import again:`),
    ...forms, again);
}

function editForm(person) {
  const form = el("form", { class: "log-card console-edit" },
    el("h2", {}, "Edit ", bdi(person.identity)),
    ...EDITABLE.map((k) => fieldInput(`edit-${person.identity}`, k, person[k])));
  const save = el("button", { type: "submit", class: "primary", "data-manager": true }, "Save");
  const cancel = el("button", { type: "button" }, "Cancel");
  cancel.addEventListener("click", () => form.remove());
  form.append(save, cancel);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = {};
    for (const [k, v] of Object.entries(person)) {
      if (HIDDEN_FIELDS.has(k) || v === null || v === "") continue;
      fields[k] = Array.isArray(v) ? v.join("; ") : v;
    }
    for (const input of form.querySelectorAll("input")) fields[input.name] = input.value;
    try {
      await call("PUT", `/api/v1/console/participants/${enc(person.identity)}`, fields);
      say(`Saved ${person.identity}.`);
      await show();
    } catch (error) {
      fail(error);
    }
  });
  return form;
}

export async function show() {
  const { participants } = await call("GET", "/api/v1/console/participants");
  const rows = participants.map((p) => [
    bdi(p.identity), bdi(p.name), p.role, p.timezone, p.active ? "active" : "deactivated",
    p.invited_at ? when(p.invited_at) : "not yet", p.signed_in_at ? when(p.signed_in_at) : "not yet",
    el("span", { class: "console-actions" },
      p.active ? action("Edit", () => {
        const form = editForm(p);
        $("people").prepend(form);
        form.querySelector("input").focus();
      }, { "data-manager": true, "aria-label": `Edit ${p.identity}` }) : null,
      action(p.active ? "Deactivate" : "Reactivate", async () => {
        if (p.active && !confirm(`Deactivate ${p.name || p.identity}? They are taken out of their rooms and signed out everywhere, and the links they hold stop working.`)) return;
        const done = await call("POST", `/api/v1/console/participants/${enc(p.identity)}/${p.active ? "deactivate" : "reactivate"}`);
        const rooms = done.rooms?.length ?? 0;
        say(p.active
          ? `${p.identity} is deactivated: removed from ${rooms} ${rooms === 1 ? "room" : "rooms"} and signed out everywhere; the links they hold stop working.`
          : `${p.identity} is active again: they can sign in; the links they held still do not work.`);
        await show();
      }, { "data-manager": true, "aria-label": `${p.active ? "Deactivate" : "Reactivate"} ${p.identity}` })),
  ]);
  $("people").replaceChildren(grid(["Identity", "Name", "Role", "Time zone", "Status", "Invited", "Signed in", "Actions"], rows,
    "Nobody yet: import a file above.", { caption: "Participants" }));
  document.dispatchEvent(new Event("console:changed"));
}

export function init() {
  $("import-file").addEventListener("change", async () => {
    const file = $("import-file").files[0];
    if (file) $("import-text").value = await file.text();
  });
  $("import-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    fail(null);
    const text = $("import-text").value;
    if (!text.trim()) {
      fail(new Error("Nothing to import: choose a file or paste a CSV (or a JSON list) first."));
      $("import-text").focus();
      return;
    }
    const name = $("import-file").files[0]?.name || "";
    const format = name.endsWith(".json") || text.trimStart().startsWith("[") ? "json" : "csv";
    say("Importing…");
    try {
      renderOutcome(await send({ format, text }));
      // Taken: the good rows are stored and the bad ones are in their forms below, so the
      // box is emptied (Import again would send the same people twice).
      $("import-form").reset();
      await show();
    } catch (error) {
      say("");
      fail(error);
    }
  });
}
