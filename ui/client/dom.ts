/// <reference lib="dom" />
/** Small DOM helpers for the page: element creation, announcements for screen readers. */

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | undefined | null | EventListener>;

/** `h("button", { type: "button", onclick }, "Save")`: an element with attributes, listeners and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v as EventListener);
    else if (k === "value" && "value" in el) (el as HTMLInputElement).value = String(v);
    else if (k === "checked" && "checked" in el) (el as HTMLInputElement).checked = v === true;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

let uid = 0;
/** A unique element id (for label `for` and `aria-describedby`). */
export function newId(prefix = "f"): string {
  return `${prefix}-${++uid}`;
}

/** Says `text` to screen readers (and shows it in the status line). */
export function announce(text: string, kind: "info" | "error" = "info"): void {
  const el = document.getElementById("status-line");
  if (!el) return;
  el.textContent = text;
  el.className = kind === "error" ? "status error" : "status";
}



/** A person name for the table: Family, Given. */
export function personName(name: { family?: string; given?: string } | undefined): string {
  return [name?.family, name?.given].filter(Boolean).join(", ");
}

/** Offers `text` as a file download named `name`. */
export function download(name: string, text: string, type = "text/plain"): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name, hidden: true });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A labelled field: `<label>` + control + optional help text tied by aria-describedby. */
export function field(label: string, control: HTMLElement, help?: string): HTMLElement {
  const id = control.id || newId();
  control.id = id;
  const helpId = help ? `${id}-help` : undefined;
  if (helpId) control.setAttribute("aria-describedby", helpId);
  const isCheck = control instanceof HTMLInputElement && (control.type === "checkbox" || control.type === "radio");
  if (isCheck) {
    return h("div", { class: "field check" }, control, h("label", { for: id }, label), help ? h("p", { class: "help", id: helpId }, help) : null);
  }
  return h("div", { class: "field" }, h("label", { for: id }, label), control, help ? h("p", { class: "help", id: helpId }, help) : null);
}
