// Writing in a chat: text with the Enter key as the person's setting says, a character counter
// for clients against the practice's limit, replies, attachments with the (+) button (upload
// progress, the attachment policy's refusals), photos from the camera, and voice notes.

import { h, icon, iconButton, codePoints } from "./dom.js";
import { snippet, plainText } from "./message.js";

export class Composer {
  constructor(view) {
    this.view = view;
    this.app = view.app;
    this.session = view.session;
    this.reply = null;
    this.recorder = null;
    this.text = h("textarea", { class: "composer-text", rows: "1", placeholder: "Write a message…", "aria-label": "Message" });
    this.text.addEventListener("keydown", (e) => this.onKey(e));
    this.text.addEventListener("input", () => {
      this.changed();
      if (this.error.dataset.kind === "text") this.showError(null);
    });
    this.counter = h("span", { class: "counter hidden", "aria-live": "polite" });
    this.error = h("div", { class: "composer-error hidden", role: "alert" });
    this.uploads = h("div", { class: "uploads" });
    this.replyBar = h("div", { class: "reply-bar hidden" });
    this.fileInput = h("input", { type: "file", class: "hidden file-input", multiple: true });
    this.cameraInput = h("input", { type: "file", class: "hidden camera-input", accept: "image/*", capture: "environment" });
    for (const input of [this.fileInput, this.cameraInput]) {
      input.addEventListener("change", () => { for (const f of input.files) this.attach(f); input.value = ""; });
    }
    this.sendButton = iconButton("send", "Send", () => this.sendText(), "send");
    this.plus = iconButton("plus", "Attach a photo or document", (e) => this.attachMenu(e.currentTarget), "attach");
    const canRecord = Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder);
    this.mic = canRecord ? iconButton("mic", "Record a voice message", () => this.record(), "record") : null;
    this.row = h("div", { class: "composer-row" }, this.plus, this.text, this.mic, this.sendButton);
    this.readOnly = h("p", { class: "read-only hidden", text: "Direct messages to the practice are turned off in this chat; you can read its history." });
    this.el = h("footer", { class: "composer" }, this.replyBar, this.uploads, this.error, this.row, this.counter, this.readOnly, this.fileInput, this.cameraInput);
  }

  // -- text ----------------------------------------------------------------------------------

  limit() {
    const p = this.view.policy;
    return p && this.view.isClient() && p.client_message_limit ? p.client_message_limit : null;
  }

  policyChanged() {
    const p = this.view.policy;
    const blocked = Boolean(p && this.view.isClient() && p.clients_may_send === false && p.kind === "direct");
    this.row.classList.toggle("hidden", blocked);
    this.readOnly.classList.toggle("hidden", !blocked);
    this.changed();
  }

  changed() {
    this.text.style.height = "auto";
    this.text.style.height = `${Math.min(this.text.scrollHeight, 160)}px`;
    const limit = this.limit();
    const used = codePoints(this.text.value);
    this.counter.classList.toggle("hidden", !limit);
    this.counter.textContent = limit ? `${used} / ${limit}` : "";
    const over = Boolean(limit && used > limit);
    this.counter.classList.toggle("over", over);
    this.sendButton.disabled = over;
  }

  onKey(e) {
    if (e.key !== "Enter" || e.isComposing) return;
    const mode = (this.app.settings && this.app.settings.enter_key) || "send";
    const modified = e.shiftKey || e.ctrlKey || e.metaKey;
    if ((mode === "send" && !modified) || (mode === "newline" && modified)) {
      e.preventDefault();
      this.sendText();
    }
  }

  async sendText() {
    const text = this.text.value;
    if (!text.trim() || this.sendButton.disabled) return;
    const content = { msgtype: "m.text", body: text };
    if (this.reply) Object.assign(content, replyContent(this.view, this.reply, text));
    this.sendButton.disabled = true;
    try {
      const sent = await this.session.send(this.view.chatId, "m.room.message", content);
      this.text.value = "";
      this.replyTo(null);
      this.view.echo(sent.event_id, "m.room.message", content);
    } catch (e) {
      if (!this.session.signedOut) this.showError(e.message, "text");
    } finally {
      this.sendButton.disabled = false;
      this.changed();
      this.text.focus();
    }
  }

  replyTo(ev) {
    this.reply = ev;
    this.replyBar.classList.toggle("hidden", !ev);
    if (!ev) { this.replyBar.replaceChildren(); return; }
    this.replyBar.replaceChildren(
      h("span", { class: "reply-label" }, "Replying to ", h("strong", { text: this.view.nameOf(ev.sender) })),
      h("span", { class: "reply-snippet", text: snippet(ev) }),
      iconButton("close", "Cancel reply", () => this.replyTo(null), "reply-cancel"));
    this.text.focus();
  }

  showError(text, kind = "") {
    this.error.textContent = text || "";
    this.error.dataset.kind = kind;
    this.error.classList.toggle("hidden", !text);
  }

  // -- attachments ---------------------------------------------------------------------------

  attachMenu(anchor) {
    for (const old of document.querySelectorAll(".menu")) old.remove();
    const item = (label, ic, action) => h("button", { type: "button", role: "menuitem", onclick: () => { menu.remove(); action(); } }, icon(ic), label);
    const menu = h("div", { class: "menu attach-menu", role: "menu" },
      item("Photo or document", "file", () => this.fileInput.click()),
      this.app.root.classList.contains("narrow") || matchMedia("(pointer: coarse)").matches ? item("Take a photo", "camera", () => this.cameraInput.click()) : null);
    this.el.append(menu);
    setTimeout(() => document.addEventListener("click", () => menu.remove(), { once: true }), 0);
  }

  async attach(file, extra = {}) {
    const name = extra.name || file.name || "attachment";
    const bar = h("span", { class: "progress-bar" });
    const percent = h("span", { class: "progress-text", text: "0%" });
    const row = h("div", { class: "upload", dataset: { name } }, h("span", { class: "upload-name", text: `Uploading ${name}` }), h("span", { class: "progress" }, bar), percent);
    this.uploads.append(row);
    this.showError(null);
    try {
      const info = { mimetype: file.type || "application/octet-stream", size: file.size };
      const dimensions = file.type.startsWith("image/") ? await imageSize(file) : null;
      const url = await this.session.upload(file, name, (done) => {
        bar.style.width = `${Math.round(done * 100)}%`;
        percent.textContent = `${Math.round(done * 100)}%`;
      });
      let content;
      if (extra.voice) {
        content = { msgtype: "m.audio", body: "Voice message", filename: name, url, info: { ...info, duration: extra.duration },
          "org.matrix.msc1767.audio": { duration: extra.duration, waveform: extra.waveform }, "org.matrix.msc3245.voice": {} };
      } else if (dimensions) {
        content = { msgtype: "m.image", body: name, filename: name, url, info: { ...info, ...dimensions } };
      } else if (file.type.startsWith("audio/")) {
        content = { msgtype: "m.audio", body: name, filename: name, url, info };
      } else {
        content = { msgtype: "m.file", body: name, filename: name, url, info };
      }
      const sent = await this.session.send(this.view.chatId, "m.room.message", content);
      this.view.echo(sent.event_id, "m.room.message", content);
    } catch (e) {
      if (!this.session.signedOut) this.showError(e.message, "upload");
    } finally {
      row.remove();
    }
  }

  // -- voice notes ---------------------------------------------------------------------------

  async record() {
    if (this.recorder) return;
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch {
      this.showError("The browser did not allow the microphone; check its permission for this site.");
      return;
    }
    const type = ["audio/ogg;codecs=opus", "audio/webm;codecs=opus", "audio/webm"].find((t) => MediaRecorder.isTypeSupported(t)) || "";
    const recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
    const chunks = [];
    const levels = [];
    const started = Date.now();
    const analyser = levelMeter(stream, levels);
    recorder.addEventListener("dataavailable", (e) => chunks.push(e.data));
    const clock = h("span", { class: "rec-time", text: "0:00" });
    const tick = setInterval(() => {
      const s = Math.floor((Date.now() - started) / 1000);
      clock.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
    }, 250);
    let keep = true;
    const stop = (send) => { keep = send; recorder.stop(); };
    const bar = h("div", { class: "recording" }, h("span", { class: "rec-dot", "aria-hidden": "true" }), h("span", { text: "Recording" }), clock,
      h("span", { class: "spacer" }),
      h("button", { type: "button", class: "secondary rec-cancel", onclick: () => stop(false) }, "Cancel"),
      h("button", { type: "button", class: "primary rec-send", onclick: () => stop(true) }, icon("send"), "Send"));
    this.row.classList.add("hidden");
    this.el.insertBefore(bar, this.row);
    this.recorder = recorder;
    recorder.addEventListener("stop", () => {
      clearInterval(tick);
      analyser.stop();
      for (const track of stream.getTracks()) track.stop();
      bar.remove();
      this.row.classList.remove("hidden");
      this.recorder = null;
      if (!keep) return;
      const mime = (recorder.mimeType || "audio/webm").split(";")[0];
      const blob = new Blob(chunks, { type: mime });
      const ext = mime.includes("ogg") ? "ogg" : "webm";
      this.attach(blob, { name: `Voice message.${ext}`, voice: true, duration: Date.now() - started, waveform: levels.slice(-100) });
    });
    recorder.start(250);
  }

  close() {
    if (this.recorder) this.recorder.stop();
  }
}

function replyContent(view, original, text) {
  const quoted = plainText(original.content || {}).split("\n").map((line) => `> ${line}`);
  quoted[0] = `> <${original.sender}> ${quoted[0].slice(2)}`;
  const link = `https://matrix.to/#/${encodeURIComponent(view.chatId)}/${encodeURIComponent(original.event_id)}`;
  const who = `https://matrix.to/#/${encodeURIComponent(original.sender)}`;
  return {
    body: `${quoted.join("\n")}\n\n${text}`,
    format: "org.matrix.custom.html",
    formatted_body: `<mx-reply><blockquote><a href="${link}">In reply to</a> <a href="${who}">${escape(original.sender)}</a><br>${escape(snippet(original))}</blockquote></mx-reply>${escape(text).replace(/\n/g, "<br>")}`,
    "m.relates_to": { "m.in_reply_to": { event_id: original.event_id } },
  };
}

function escape(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

async function imageSize(file) {
  try {
    const bitmap = await createImageBitmap(file);
    const size = { w: bitmap.width, h: bitmap.height };
    bitmap.close();
    return size;
  } catch {
    return null;
  }
}

function levelMeter(stream, levels) {
  try {
    const context = new AudioContext();
    context.resume().catch(() => {});
    const analyser = context.createAnalyser();
    context.createMediaStreamSource(stream).connect(analyser);
    const data = new Uint8Array(analyser.fftSize);
    const timer = setInterval(() => {
      analyser.getByteTimeDomainData(data);
      let peak = 0;
      for (const v of data) peak = Math.max(peak, Math.abs(v - 128));
      levels.push(Math.min(1024, Math.round((peak / 128) * 1024)));
    }, 100);
    return { stop: () => { clearInterval(timer); context.close(); } };
  } catch {
    return { stop: () => {} };
  }
}
