// One message on screen: its text (plain, or formatted through the allow-list), a photo shown
// inline, a document to download, a voice note to play, the message it replies to, its
// reactions, and the actions the person may take on it.

import { h, icon, iconButton, sanitize, time, size, saveBlob, dialog } from "./dom.js";

export const REACTIONS = ["👍", "❤️", "😊", "🙏", "👏", "✅"];

export function isDeleted(ev) {
  return Boolean(ev.unsigned && ev.unsigned.redacted_because) || !ev.content || !ev.content.msgtype;
}

export function replyTarget(content) {
  const rel = content && content["m.relates_to"];
  return rel && rel["m.in_reply_to"] && rel["m.in_reply_to"].event_id;
}

// The text a person wrote, without the quoted fallback of a reply.
export function plainText(content) {
  let body = typeof content.body === "string" ? content.body : "";
  if (replyTarget(content) && body.startsWith("> ")) {
    const lines = body.split("\n");
    let i = 0;
    while (i < lines.length && lines[i].startsWith(">")) i++;
    if (lines[i] === "") i++;
    body = lines.slice(i).join("\n");
  }
  return body;
}

export function snippet(ev) {
  if (!ev) return "…";
  if (isDeleted(ev)) return "Deleted message";
  const c = ev.content;
  const name = c.filename || c.body || "";
  switch (c.msgtype) {
    case "m.image": return `Photo: ${name}`;
    case "m.file": return `Document: ${name}`;
    case "m.video": return `Video: ${name}`;
    case "m.audio": return c["org.matrix.msc3245.voice"] ? "Voice message" : `Audio: ${name}`;
    default: return plainText(c).slice(0, 200);
  }
}

export class MessageRenderer {
  constructor(view) {
    this.view = view;
    this.blobs = new Map();
  }

  blobUrl(mxc, thumbnail) {
    const key = `${mxc}|${thumbnail || ""}`;
    if (!this.blobs.has(key)) {
      const promise = this.view.session.media(mxc, thumbnail).then((blob) => URL.createObjectURL(blob));
      promise.catch(() => this.blobs.delete(key));
      this.blobs.set(key, promise);
    }
    return this.blobs.get(key);
  }

  release() {
    for (const promise of this.blobs.values()) promise.then((url) => URL.revokeObjectURL(url), () => {});
    this.blobs.clear();
  }

  async download(content) {
    try {
      const blob = await this.view.session.media(content.url);
      saveBlob(blob, content.filename || content.body || "attachment");
    } catch (e) {
      this.view.app.fail(e);
    }
  }

  render(ev) {
    const v = this.view;
    const own = ev.sender === v.session.userId;
    const deleted = isDeleted(ev);
    const edit = v.edits.get(ev.event_id);
    const content = deleted ? {} : (edit || ev.content);
    const classes = ["msg", own ? "own" : "other", deleted ? "deleted" : "", v.pinned.includes(ev.event_id) ? "pinned" : ""];
    // Focusable, so that a tap on a touch screen shows the message's actions.
    const el = h("div", { class: classes.join(" "), tabindex: "0", dataset: { eventId: ev.event_id, ts: String(ev.origin_server_ts) } });
    if (!own) el.append(h("div", { class: "sender", text: v.nameOf(ev.sender) }));
    const bubble = h("div", { class: "bubble" });
    if (deleted) {
      bubble.append(h("p", { class: "body deleted-note", text: "This message was deleted" }));
    } else {
      const target = replyTarget(ev.content);
      if (target) bubble.append(this.quote(target));
      bubble.append(this.body(content));
    }
    el.append(bubble);
    const meta = h("div", { class: "meta" },
      v.pinned.includes(ev.event_id) ? h("span", { class: "pin-mark", title: "Pinned" }, icon("pin")) : null,
      h("time", { datetime: new Date(ev.origin_server_ts).toISOString(), text: time(ev.origin_server_ts) }),
      edit ? h("span", { class: "edited", text: "(edited)" }) : null);
    if (own && v.showsReceipts()) {
      meta.append(h("span", { class: "receipt hidden", title: "Read", "aria-label": "Read" }, "R", icon("check")));
    }
    el.append(meta);
    if (!deleted) {
      el.append(this.reactions(ev.event_id));
      el.append(this.actions(ev, own));
    }
    return el;
  }

  quote(targetId) {
    const original = this.view.events.get(targetId);
    if (!original) this.view.fetchOriginal(targetId);
    return h("button", { type: "button", class: "quote", onclick: () => this.view.scrollTo(targetId) },
      h("span", { class: "quote-sender", text: original ? this.view.nameOf(original.sender) : "" }),
      h("span", { class: "quote-text", text: snippet(original) }));
  }

  body(c) {
    switch (c.msgtype) {
      case "m.image": return this.image(c);
      case "m.audio": return this.audio(c);
      case "m.file":
      case "m.video": return this.file(c);
      default: {
        if (c.format === "org.matrix.custom.html" && typeof c.formatted_body === "string") {
          return h("div", { class: "body formatted" }, sanitize(c.formatted_body));
        }
        return h("p", { class: "body", text: plainText(c) });
      }
    }
  }

  image(c) {
    const info = c.info || {};
    const img = h("img", { class: "photo", alt: c.filename || c.body || "Photo" });
    if (info.w && info.h) {
      const scale = Math.min(1, 280 / info.w, 280 / info.h);
      img.width = Math.round(info.w * scale);
      img.height = Math.round(info.h * scale);
    }
    this.blobUrl(c.url, info.size && info.size < 200000 ? null : 800).then((url) => { img.src = url; }, () => img.replaceWith(h("span", { class: "media-error", text: "The photo could not be loaded." })));
    const caption = c.filename && c.body && c.body !== c.filename ? h("p", { class: "caption", text: c.body }) : null;
    return h("div", { class: "body media" },
      h("button", { type: "button", class: "photo-open", "aria-label": "Open photo", onclick: () => this.lightbox(c) }, img), caption);
  }

  async lightbox(c) {
    const img = h("img", { class: "lightbox-photo", alt: c.filename || c.body || "Photo" });
    this.blobUrl(c.url).then((url) => { img.src = url; });
    const choice = await dialog(c.filename || c.body || "Photo", img, [["Close", null], ["Download", "save", "primary"]]);
    if (choice === "save") this.download(c);
  }

  file(c) {
    const info = c.info || {};
    const name = c.filename || c.body || "Document";
    return h("div", { class: "body file-card" },
      h("span", { class: "file-icon" }, icon("file")),
      h("span", { class: "file-text" }, h("span", { class: "file-name", text: name }), h("span", { class: "file-size", text: size(info.size) })),
      iconButton("download", `Download ${name}`, () => this.download(c), "file-download"));
  }

  audio(c) {
    const info = c.info || {};
    const voice = Boolean(c["org.matrix.msc3245.voice"]);
    const duration = (c["org.matrix.msc1767.audio"] && c["org.matrix.msc1767.audio"].duration) || info.duration || 0;
    const wave = (c["org.matrix.msc1767.audio"] && c["org.matrix.msc1767.audio"].waveform) || [];
    const label = h("span", { class: "voice-time", text: clock(duration) });
    const play = h("button", { type: "button", class: "voice-play", "aria-label": "Play" }, icon("play"));
    const bars = h("span", { class: "waveform", "aria-hidden": "true" });
    const samples = wave.length ? resample(wave, 28) : new Array(28).fill(300);
    for (const value of samples) {
      const bar = h("span", { class: "bar" });
      bar.style.height = `${Math.max(18, Math.min(100, (value / 1024) * 100))}%`;
      bars.append(bar);
    }
    let audio = null;
    play.addEventListener("click", async () => {
      if (!audio) {
        try {
          audio = new Audio(await this.blobUrl(c.url));
        } catch (e) {
          this.view.app.fail(e);
          return;
        }
        audio.addEventListener("timeupdate", () => { label.textContent = clock(audio.currentTime * 1000); });
        audio.addEventListener("ended", () => { play.replaceChildren(icon("play")); label.textContent = clock(duration); play.classList.remove("playing"); });
      }
      if (audio.paused) {
        audio.play().catch(() => {});
        play.replaceChildren(icon("pause"));
        play.classList.add("playing");
      } else {
        audio.pause();
        play.replaceChildren(icon("play"));
        play.classList.remove("playing");
      }
    });
    return h("div", { class: `body voice ${voice ? "is-voice" : "is-audio"}` }, play, bars, label,
      voice ? null : h("span", { class: "file-name", text: c.filename || c.body || "Audio" }));
  }

  reactions(eventId) {
    const me = this.view.session.userId;
    const byKey = this.view.reactions.get(eventId);
    const row = h("div", { class: "reactions" });
    if (!byKey) return row;
    for (const [key, senders] of byKey) {
      if (!senders.size) continue;
      const mine = senders.has(me);
      const names = [...senders.keys()].map((s) => this.view.nameOf(s)).join(", ");
      row.append(h("button", { type: "button", class: `reaction ${mine ? "mine" : ""}`, "aria-pressed": String(mine), title: names, dataset: { key },
        onclick: () => this.view.toggleReaction(eventId, key) }, h("span", { class: "reaction-key", text: key }), h("span", { class: "reaction-count", text: String(senders.size) })));
    }
    return row;
  }

  actions(ev, own) {
    const v = this.view;
    const bar = h("div", { class: "msg-actions" },
      iconButton("smile", "React", (e) => this.picker(ev.event_id, e.currentTarget), "act-react"),
      iconButton("reply", "Reply", () => v.composer.replyTo(ev), "act-reply"));
    if (v.canPin()) {
      const pinned = v.pinned.includes(ev.event_id);
      bar.append(iconButton("pin", pinned ? "Unpin message" : "Pin message", () => v.setPinned(ev.event_id, !pinned), pinned ? "act-unpin" : "act-pin"));
    }
    if (own) bar.append(iconButton("trash", "Delete message", () => v.deleteMessage(ev), "act-delete"));
    return bar;
  }

  picker(eventId, anchor) {
    for (const old of document.querySelectorAll(".reaction-picker")) old.remove();
    const picker = h("div", { class: "reaction-picker", role: "menu" }, REACTIONS.map((key) =>
      h("button", { type: "button", role: "menuitem", class: "pick", dataset: { key }, "aria-label": `React with ${key}`, onclick: () => { picker.remove(); this.view.toggleReaction(eventId, key); } }, key)));
    anchor.closest(".msg").append(picker);
    setTimeout(() => document.addEventListener("click", () => picker.remove(), { once: true }), 0);
  }
}

function clock(ms) {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function resample(values, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(values[Math.floor((i * values.length) / n)] || 0);
  return out;
}
