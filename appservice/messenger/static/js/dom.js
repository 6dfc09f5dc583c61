// Building the page: every text goes in as text (textContent), never as markup. The one place
// markup from a message is used, sanitize() rebuilds it from an allow-list.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG = "http://www.w3.org/2000/svg";
const PATHS = {
  star: "M12 3.5l2.6 5.6 6.1.7-4.5 4.2 1.2 6-5.4-3.1-5.4 3.1 1.2-6L3.3 9.8l6.1-.7z",
  more: "M12 6.5a1.6 1.6 0 110-3.2 1.6 1.6 0 010 3.2zm0 7.1a1.6 1.6 0 110-3.2 1.6 1.6 0 010 3.2zm0 7.1a1.6 1.6 0 110-3.2 1.6 1.6 0 010 3.2z",
  plus: "M11 5h2v6h6v2h-6v6h-2v-6H5v-2h6z",
  send: "M3.4 20.4L21 12 3.4 3.6 3.4 10l12.6 2-12.6 2z",
  mic: "M12 14.5a3 3 0 003-3v-6a3 3 0 10-6 0v6a3 3 0 003 3zm5.3-3a5.3 5.3 0 01-10.6 0H5a7 7 0 006 6.9V21h2v-2.6a7 7 0 006-6.9z",
  back: "M15.4 5.4L14 4l-8 8 8 8 1.4-1.4L8.8 12z",
  expand: "M5 5h6v2H8.4l4.3 4.3-1.4 1.4L7 8.4V11H5zm14 14h-6v-2h2.6l-4.3-4.3 1.4-1.4 4.3 4.3V13h2z",
  minimise: "M5 17h14v2H5z",
  close: "M6.4 5L12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z",
  pin: "M15 3l6 6-2 1-3.5 3.5.5 4.5-2 2-4-4-5 5-1-1 5-5-4-4 2-2 4.5.5L15 5z",
  reply: "M10 8V4l-7 7 7 7v-4.1c5 0 8.5 1.6 11 5.1-1-5-4-10-11-11z",
  smile: "M12 2a10 10 0 100 20 10 10 0 000-20zm0 18a8 8 0 110-16 8 8 0 010 16zm-3.5-9a1.5 1.5 0 100-3 1.5 1.5 0 000 3zm7 0a1.5 1.5 0 100-3 1.5 1.5 0 000 3zM12 17.5c2.3 0 4.3-1.5 5-3.5H7c.7 2 2.7 3.5 5 3.5z",
  trash: "M9 3h6l1 1h4v2H4V4h4zm-3 4h12l-1 14H7z",
  file: "M6 2h8l6 6v14H6zm7 1.5V9h5.5z",
  download: "M11 4h2v8.2l3.3-3.3 1.4 1.4-5.7 5.7-5.7-5.7 1.4-1.4 3.3 3.3zM5 18h14v2H5z",
  play: "M8 5v14l11-7z",
  pause: "M7 5h4v14H7zm6 0h4v14h-4z",
  gear: "M19.4 13a7.5 7.5 0 000-2l2.1-1.6-2-3.5-2.5 1a7.4 7.4 0 00-1.7-1L15 3h-4l-.4 2.7a7.4 7.4 0 00-1.7 1l-2.5-1-2 3.5L6.6 11a7.5 7.5 0 000 2l-2.1 1.6 2 3.5 2.5-1c.5.4 1.1.8 1.7 1L11 21h4l.4-2.7c.6-.3 1.2-.6 1.7-1l2.5 1 2-3.5zM13 15.5a3.5 3.5 0 110-7 3.5 3.5 0 010 7z",
  chat: "M4 4h16v12H7l-3 3z",
  people: "M9 11a3.5 3.5 0 110-7 3.5 3.5 0 010 7zm7 0a3 3 0 110-6 3 3 0 010 6zM2 19c0-3 3-5 7-5s7 2 7 5v1H2zm15-5c2.8.3 5 1.9 5 4.5V20h-4v-1c0-1.9-.4-3.5-1-5z",
  camera: "M9 4h6l1.5 2H20v13H4V6h3.5zm3 13a4.5 4.5 0 100-9 4.5 4.5 0 000 9z",
  check: "M9 16.2l-3.5-3.5L4 14.1l5 5 11-11-1.4-1.4z",
  stop: "M7 7h10v10H7z",
};

export function icon(name, label) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `icon icon-${name}`);
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", PATHS[name]);
  svg.append(path);
  if (!label) return svg;
  return [svg, h("span", { class: "sr-only", text: label })];
}

export function iconButton(name, label, onclick, cls = "") {
  return h("button", { type: "button", class: `icon-button ${cls}`, title: label, "aria-label": label, onclick }, icon(name));
}

// -- formatted bodies ----------------------------------------------------------------------

const ALLOWED = new Set([
  "b", "strong", "i", "em", "u", "s", "del", "strike", "code", "pre", "blockquote", "p", "br",
  "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "sup", "sub", "span", "a",
]);
const DROPPED = new Set(["mx-reply", "script", "style", "iframe", "object", "embed", "template", "svg", "math", "head", "title"]);

// Rebuilds org.matrix.custom.html from an allow-list of elements, keeping only safe links;
// everything else becomes its text. DOMParser never runs scripts or loads anything.
export function sanitize(html) {
  const doc = new DOMParser().parseFromString(`<body>${html}</body>`, "text/html");
  const out = document.createDocumentFragment();
  copyChildren(doc.body, out, 0);
  return out;
}

function copyChildren(from, to, depth) {
  for (const node of from.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) { to.append(document.createTextNode(node.data)); continue; }
    if (node.nodeType !== Node.ELEMENT_NODE) continue;
    const tag = node.localName;
    if (DROPPED.has(tag)) continue;
    if (!ALLOWED.has(tag) || depth > 20) { copyChildren(node, to, depth + 1); continue; }
    const el = document.createElement(tag);
    if (tag === "a") {
      const href = node.getAttribute("href") || "";
      if (/^(https?:|mailto:)/i.test(href)) {
        el.href = href;
        el.target = "_blank";
        el.rel = "noopener noreferrer nofollow";
      }
    }
    copyChildren(node, el, depth + 1);
    to.append(el);
  }
}

// -- text ----------------------------------------------------------------------------------

export function codePoints(text) {
  return [...text].length;
}

export function time(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function when(ts) {
  if (!ts) return "";
  const date = new Date(ts);
  const now = new Date();
  if (date.toDateString() === now.toDateString()) return time(ts);
  const days = (now - date) / 86400000;
  if (days < 6) return date.toLocaleDateString([], { weekday: "short" });
  return date.toLocaleDateString([], { day: "numeric", month: "short" });
}

export function day(ts) {
  return new Date(ts).toLocaleDateString([], { weekday: "long", day: "numeric", month: "long", year: "numeric" });
}

export function size(bytes) {
  if (!bytes && bytes !== 0) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function initials(name) {
  const words = (name || "?").trim().split(/\s+/).filter((w) => /\p{L}|\p{N}/u.test(w));
  return ((words[0] || "?")[0] + (words.length > 1 ? words[words.length - 1][0] : "")).toUpperCase();
}

export function avatar(name, cls = "") {
  let hash = 0;
  for (const ch of name || "") hash = (hash * 31 + ch.codePointAt(0)) % 360;
  const el = h("span", { class: `avatar hue-${hash % 6} ${cls}`, "aria-hidden": "true", text: initials(name) });
  return el;
}

// -- dialogs -------------------------------------------------------------------------------

let layer = null;
export function setDialogLayer(el) { layer = el; }

export function dialog(title, body, buttons) {
  return new Promise((resolve) => {
    const close = (value) => { box.remove(); resolve(value); };
    const content = typeof body === "function" ? body(close) : body;
    const box = h("div", { class: "dialog-backdrop", onclick: (e) => { if (e.target === box) close(null); } },
      h("div", { class: "dialog", role: "dialog", "aria-modal": "true", "aria-label": title },
        h("h2", { text: title }),
        content,
        h("div", { class: "dialog-buttons" },
          buttons.map(([label, value, cls]) => h("button", { type: "button", class: cls || "", onclick: () => close(typeof value === "function" ? value() : value) }, label)))));
    box.addEventListener("keydown", (e) => { if (e.key === "Escape") close(null); });
    layer.append(box);
    const first = box.querySelector("input, select, textarea, button.primary, button.danger");
    if (first) first.focus();
  });
}

export function confirm(title, text, action, cls = "danger") {
  return dialog(title, h("p", { text }), [["Cancel", false], [action, true, cls]]);
}

// A menu next to the button that opened it, above everything (rows may be redrawn meanwhile).
export function popup(menu, anchor) {
  for (const old of layer.querySelectorAll(".menu")) old.remove();
  const box = layer.getBoundingClientRect();
  const at = anchor.getBoundingClientRect();
  menu.classList.add("popup");
  layer.append(menu);
  const below = at.bottom - box.top + 4;
  const top = below + menu.offsetHeight > box.height ? at.top - box.top - menu.offsetHeight - 4 : below;
  menu.style.top = `${Math.max(4, top)}px`;
  menu.style.left = `${Math.max(4, Math.min(at.right - box.left - menu.offsetWidth, box.width - menu.offsetWidth - 4))}px`;
  setTimeout(() => document.addEventListener("click", () => menu.remove(), { once: true }), 0);
}

export function toast(text, kind = "info") {
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status", text });
  for (const old of layer.querySelectorAll(".toast")) old.remove();
  layer.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 6000 : 2500);
}

export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name, class: "hidden" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
