// Criteria: a form for the common settings, YAML for everything else. Both are validated by
// the server as before (PUT /api/v1/matching/criteria); its message names what is wrong.

import { el } from "../sessionlog.js";
import { call } from "./api.js";
import { $, fail, say } from "./ui.js";

const RULES = {
  overlap: "Shared items (skills, goals, languages, tags)",
  equality: "Same value (department, organisation, seniority, time zone)",
  distance: "Seniority or experience gap",
  shared_hours: "Shared free hours a week",
  preference: "Stated preferences",
};
const FIELDS = { overlap: ["skills", "goals", "languages", "tags"], equality: ["department", "organisation", "seniority", "timezone"], distance: ["seniority", "experience_years"], shared_hours: [], preference: [] };
const WEIGHTS = ["must", "high", "medium", "low"];
let current = null; // the criteria as stored: the form keeps what it does not show

function select(id, label, options, value) {
  return el("div", { class: "console-field" }, el("label", { for: id }, label),
    el("select", { id }, ...Object.entries(options).map(([v, text]) => el("option", { value: v, selected: v === value }, text))));
}

function criterionRow(c, index) {
  const row = el("div", { class: "console-criterion", "data-index": index },
    el("div", { class: "console-field" }, el("label", { for: `c-name-${index}` }, "Name"),
      el("input", { id: `c-name-${index}`, value: c.name || "", required: true })),
    select(`c-rule-${index}`, "Rule", RULES, c.rule || "overlap"),
    select(`c-field-${index}`, "Field", { "": "–", ...Object.fromEntries(Object.values(FIELDS).flat().map((f) => [f, f])) }, c.field || ""),
    select(`c-weight-${index}`, "Weight", Object.fromEntries(WEIGHTS.map((w) => [w, w])), typeof c.weight === "string" ? c.weight : "medium"));
  const remove = el("button", { type: "button", "data-manager": true, "aria-label": `Remove criterion ${index + 1}` }, "Remove");
  remove.addEventListener("click", () => { row.remove(); });
  row.append(remove);
  row.original = c;
  return row;
}

function fill(criteria) {
  current = criteria;
  // The starter asks for shared skills and for free time in common: without the second, a
  // pair who can never meet would score as high as any.
  const starter = [
    { name: "skills", rule: "overlap", field: "skills", weight: "high" },
    { name: "time together", rule: "shared_hours", weight: "medium" },
  ];
  const list = criteria?.criteria?.length ? criteria.criteria : starter;
  $("criteria-rows").replaceChildren(...list.map(criterionRow));
  const f = criteria?.filters || {};
  $("f-gap").value = f.max_timezone_gap_hours ?? "";
  $("f-language").checked = !!f.shared_language;
  $("f-department").checked = !!f.different_department;
  $("f-reporting").checked = !!f.different_reporting_line;
  $("criteria-yaml").value = criteria ? JSON.stringify(criteria, null, 2) : "";
  document.dispatchEvent(new Event("console:changed"));
}

function fromForm() {
  const criteria = [...document.querySelectorAll(".console-criterion")].map((row) => {
    const i = row.dataset.index;
    const c = { ...row.original, name: $(`c-name-${i}`).value.trim(), rule: $(`c-rule-${i}`).value, weight: $(`c-weight-${i}`).value };
    const field = $(`c-field-${i}`).value;
    if (field && FIELDS[c.rule].length) c.field = field;
    else delete c.field;
    if (c.rule !== "overlap") delete c.mentor_field;
    return c;
  });
  const gap = $("f-gap").value;
  return {
    ...(current || {}),
    criteria,
    filters: {
      ...(current?.filters || {}),
      max_timezone_gap_hours: gap === "" ? null : Number(gap),
      shared_language: $("f-language").checked,
      different_department: $("f-department").checked,
      different_reporting_line: $("f-reporting").checked,
    },
  };
}

export async function show() {
  try {
    fill(await call("GET", "/api/v1/matching/criteria"));
  } catch (error) {
    if (error.status !== 404) throw error;
    fill(null);
    say("No criteria yet: the form starts with one.");
  }
}

export function init() {
  let added = 100;
  $("criterion-add").addEventListener("click", () => {
    const row = criterionRow({ name: "", rule: "overlap", weight: "medium" }, added++);
    $("criteria-rows").append(row);
    row.querySelector("input").focus();
  });
  $("criteria-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    fail(null);
    try {
      fill(await call("PUT", "/api/v1/matching/criteria", fromForm()));
      say("Criteria saved.");
    } catch (error) {
      fail(error);
    }
  });
  // The YAML's error shows under the box, where it is being fixed; the text stays as typed
  // and nothing is saved (the server refuses it whole).
  const yamlError = (error) => {
    $("yaml-error").textContent = error ? `Not saved: ${error.message}` : "";
    if (error) $("criteria-yaml").setAttribute("aria-invalid", "true");
    else $("criteria-yaml").removeAttribute("aria-invalid");
  };
  $("criteria-yaml").addEventListener("input", () => yamlError(null));
  $("yaml-save").addEventListener("click", async () => {
    fail(null);
    yamlError(null);
    try {
      fill(await call("PUT", "/api/v1/matching/criteria", undefined, { raw: $("criteria-yaml").value, type: "application/yaml" }));
      say("Criteria saved from YAML.");
    } catch (error) {
      yamlError(error);
      $("criteria-yaml").focus();
    }
  });
}
