/// <reference lib="dom" />
/**
 * A command's form, generated from its definition (the server reads commands/<name>.ts through
 * cli/command.ts): a control per option, grouped as `--help` groups them, each labelled by its flag
 * and described by its help text.
 */
import { initialValue } from "../shared/argv.ts";
import type { CommandInfo, CommandOptionInfo, CommandValues } from "../shared/types.ts";
import { app } from "./api.ts";
import { field, h, newId } from "./dom.ts";

/** Fresh values for a command: every option at its default, no positional arguments. */
export function defaultValues(info: CommandInfo): CommandValues {
  const options: CommandValues["options"] = {};
  for (const o of info.options) options[o.attribute] = initialValue(o);
  return { options, args: [] };
}

const remembered = new Map<string, CommandValues>();

/** The values the page holds for a command (shared by every screen that shows its form). */
export function valuesFor(info: CommandInfo): CommandValues {
  let v = remembered.get(info.name);
  if (!v) remembered.set(info.name, v = defaultValues(info));
  return v;
}

function describe(o: CommandOptionInfo): string {
  const d = o.defaultValue;
  const shown = d === undefined || d === false || (Array.isArray(d) && !d.length) ? "" : ` (default: ${Array.isArray(d) ? d.join(", ") : d})`;
  return `${o.description}${shown}${o.repeatable ? " — one value per line" : ""}${o.mandatory ? " — required" : ""}`;
}

function control(o: CommandOptionInfo, values: CommandValues, changed: () => void): HTMLElement {
  const id = newId(`opt-${o.attribute}`);
  const set = (v: CommandValues["options"][string]) => {
    values.options[o.attribute] = v;
    changed();
  };
  const current = values.options[o.attribute];
  if (!o.takesValue) {
    // A --no-x switch is shown as itself: ticked means the flag is given.
    const input = h("input", { type: "checkbox", id, "data-option": o.attribute, checked: o.negate ? current === false : current === true });
    input.addEventListener("change", () => set(o.negate ? !input.checked : input.checked));
    return field(o.negate ? (o.long ?? o.flags) : o.flags, input, describe(o));
  }
  if (o.attribute === "peer") {
    const select = h("select", { id, "data-option": o.attribute },
      h("option", { value: "" }, "(none)"),
      ...Object.keys(app.config.peers).map((n) => h("option", { value: n, selected: current === n }, n)));
    select.addEventListener("change", () => set(select.value));
    return field(o.flags, select, describe(o));
  }
  if (o.choices) {
    const select = h("select", { id, "data-option": o.attribute },
      ...o.choices.map((c) => h("option", { value: c, selected: String(current) === c }, c)));
    select.addEventListener("change", () => set(select.value));
    return field(o.flags, select, describe(o));
  }
  if (o.repeatable) {
    const area = h("textarea", { id, rows: 2, "data-option": o.attribute, spellcheck: "false" });
    area.value = Array.isArray(current) ? current.join("\n") : "";
    area.addEventListener("input", () => set(area.value.split("\n")));
    return field(o.flags, area, describe(o));
  }
  const input = h("input", {
    type: "text", id, "data-option": o.attribute, spellcheck: "false", autocomplete: "off",
    value: typeof current === "string" ? current : "", required: o.mandatory,
  });
  input.addEventListener("input", () => set(input.value));
  return field(o.flags, input, describe(o));
}

/** The form of `info`; `hide` leaves options out (the ones a screen sets itself). Calls `changed` on every edit. */
export function commandForm(info: CommandInfo, values: CommandValues, changed: () => void, hide: readonly string[] = []): HTMLElement {
  const groups = new Map<string, CommandOptionInfo[]>();
  for (const o of info.options) {
    if (hide.includes(o.attribute)) continue;
    const g = o.group ?? "Options";
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g)!.push(o);
  }
  const parts: HTMLElement[] = [];
  for (const [name, options] of groups) {
    const title = name.replace(/:$/, "");
    const body = options.map((o) => control(o, values, changed));
    // The command's own options open; the shared groups (peer, common) folded.
    if (name === "Options") parts.push(h("fieldset", { class: "group" }, h("legend", {}, title), body));
    else parts.push(h("details", { class: "group" }, h("summary", {}, title), h("fieldset", {}, h("legend", { class: "sr-only" }, title), body)));
  }
  for (const a of info.arguments) {
    if (hide.includes(`arg:${a.name}`)) continue;
    const area = h("textarea", { id: newId("args"), rows: 2, "data-argument": a.name, spellcheck: "false" });
    area.value = values.args.join("\n");
    area.addEventListener("input", () => {
      values.args = area.value.split("\n");
      changed();
    });
    parts.push(field(`${a.name}${a.variadic ? " (one per line)" : ""}`, area, a.description));
  }
  return h("div", { class: "command-form" }, parts);
}
