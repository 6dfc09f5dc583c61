// An open chat: its history (paged back as the person scrolls), live events from the sync
// loop, reactions, replies, deletions, pinned messages and documents in the panel on the right,
// and read markers for staff.

import { h, icon, iconButton, avatar, day, dialog, confirm, toast, size } from "./dom.js";
import { encode as q } from "./api.js";
import { MessageRenderer, isDeleted, snippet } from "./message.js";
import { Composer } from "./composer.js";

const PAGE = 40;

export class ChatView {
  constructor(app, chat) {
    this.app = app;
    this.session = app.session;
    this.chat = chat;
    this.chatId = chat.chat_id;
    this.events = new Map();
    this.order = [];
    this.reactions = new Map();
    this.reactionIndex = new Map();
    this.edits = new Map();
    this.pinned = [];
    this.policy = null;
    this.prevBatch = null;
    this.atStart = false;
    this.loadingBack = false;
    this.closed = false;
    this.clientReadTs = 0;
    this.documents = new Map();
    this.lastReceipt = null;
    this.renderer = new MessageRenderer(this);
    this.build();
    this.listChanged(chat);
  }

  // -- people --------------------------------------------------------------------------------

  nameOf(userId) {
    const member = this.chat.members.find((m) => m.user_id === userId);
    if (member) return member.name;
    if (userId === this.session.userId) return "You";
    // A family member's chat: the primary answers with their own account.
    const known = this.app.contacts.body && findPerson(this.app.contacts.body, userId);
    return known ? known.name : "Practice";
  }

  showsReceipts() { return this.app.isStaff; }
  canPin() { return this.app.isStaff; }

  isClient() {
    return Boolean(this.policy && (this.policy.client_user_ids || []).includes(this.session.userId));
  }

  // -- layout --------------------------------------------------------------------------------

  build() {
    this.title = h("h2", { class: "chat-title" });
    this.sub = h("p", { class: "chat-subtitle" });
    this.avatarSlot = h("span");
    this.panelButton = iconButton("pin", "Pinned messages and documents", () => this.togglePanel(), "panel-toggle");
    this.head = h("header", { class: "chat-head" },
      iconButton("back", "Back to chats", () => this.app.closeChat(), "back"),
      this.avatarSlot,
      h("div", { class: "chat-heading" }, this.title, this.sub),
      this.panelButton,
      iconButton("more", "Chat options", (e) => this.menu(e.currentTarget), "chat-menu"));
    this.timeline = h("div", { class: "timeline", role: "log", "aria-live": "polite", "aria-label": "Messages" });
    this.history = h("div", { class: "history-status" });
    this.scroller = h("div", { class: "scroller" }, this.history, this.timeline);
    this.scroller.addEventListener("scroll", () => { if (this.scroller.scrollTop < 150) this.loadBack(); });
    this.pinnedList = h("ul", { class: "pinned-list" });
    this.docList = h("ul", { class: "doc-list" });
    this.panel = h("aside", { class: "side-panel", "aria-label": "Pinned messages and documents" },
      h("div", { class: "panel-head" }, h("h3", { text: "Pinned messages" }), iconButton("close", "Close panel", () => this.togglePanel(false), "panel-close")),
      this.pinnedList,
      h("h3", { text: "Documents" }),
      this.docList);
    this.composer = new Composer(this);
    this.el = h("section", { class: "chat" }, this.head,
      h("div", { class: "chat-body" }, h("div", { class: "chat-column" }, this.scroller, this.composer.el), this.panel));
    this.togglePanel(this.app.root.clientWidth >= 1100);
    document.addEventListener("visibilitychange", this.onVisible = () => this.sendReceipt());
  }

  togglePanel(open = !this.el.classList.contains("panel-open")) {
    this.el.classList.toggle("panel-open", open);
    this.panelButton.setAttribute("aria-pressed", String(open));
  }

  listChanged(chat) {
    if (!chat) return;
    this.chat = chat;
    const list = this.app.list;
    const name = list.title(chat);
    this.title.textContent = name;
    this.avatarSlot.replaceChildren(avatar(name));
    const family = chat.members.find((m) => m.kind === "client" && m.family_primary_id);
    let sub = list.subtitle(chat);
    if (family && list.staffView(chat)) {
      const primary = this.app.contacts.body && findClient(this.app.contacts.body, family.family_primary_id);
      sub = `Family member · answered by ${primary ? primary.name : "the family's primary account"}`;
      if (!primary) this.app.contacts.data().then(() => { this.listChanged(this.chat); this.renderAll(); });
    }
    this.sub.textContent = sub;
    const reads = chat.members.filter((m) => m.kind === "client" && m.last_read_ts).map((m) => m.last_read_ts);
    this.clientReadTs = Math.max(this.clientReadTs, ...reads, 0);
    this.refreshReceipts();
  }

  menu(anchor) {
    const extra = [];
    if (this.app.isStaff && this.chat.kind === "direct") {
      extra.push(["Share with a team member", () => this.share()]);
      extra.push(["Add people (make a group chat)", () => this.convert()]);
    }
    this.app.list.menu(this.chat, anchor, extra);
  }

  // -- loading -------------------------------------------------------------------------------

  async open() {
    try {
      const [policy, pins, page] = await Promise.all([
        this.session.state(this.chatId, "org.practicebridge.policy"),
        this.session.state(this.chatId, "m.room.pinned_events"),
        this.session.messages(this.chatId, null, PAGE),
      ]);
      if (this.closed) return;
      this.policy = policy;
      this.pinned = (pins && pins.pinned) || [];
      this.composer.policyChanged();
      this.ingestPage(page);
      this.renderAll();
      this.scroller.scrollTop = this.scroller.scrollHeight;
      this.renderPinned();
      this.loadDocuments();
      while (!this.atStart && this.scroller.scrollHeight <= this.scroller.clientHeight + 150 && !this.closed) await this.loadBack();
      this.sendReceipt();
      if (this.chat.unread) {
        await this.session.provision("DELETE", `/chats/${q(this.chatId)}/unread`);
        this.app.list.refreshSoon();
      }
    } catch (e) {
      this.app.fail(e);
    }
  }

  ingestPage(page) {
    const chunk = [...(page.chunk || [])].reverse();
    const fresh = [];
    for (const ev of chunk) {
      if (this.ingest(ev, true)) fresh.push(ev.event_id);
    }
    this.order = [...fresh, ...this.order];
    this.prevBatch = page.end || null;
    this.atStart = !page.end || !chunk.length || chunk.some((ev) => ev.type === "m.room.create");
    this.history.textContent = this.atStart ? "This is the beginning of the chat." : "";
  }

  async loadBack() {
    if (this.loadingBack || this.atStart || this.closed) return;
    this.loadingBack = true;
    this.history.textContent = "Loading earlier messages…";
    try {
      const page = await this.session.messages(this.chatId, this.prevBatch, PAGE);
      if (this.closed) return;
      const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
      this.ingestPage(page);
      this.renderAll();
      this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
    } catch (e) {
      this.app.fail(e);
    } finally {
      this.loadingBack = false;
    }
  }

  async loadDocuments() {
    let from = null;
    const filter = { types: ["m.room.message"], contains_url: true, lazy_load_members: true };
    for (let i = 0; i < 5 && !this.closed; i++) {
      const page = await this.session.messages(this.chatId, from, 50, filter).catch(() => null);
      if (!page) return;
      for (const ev of page.chunk || []) this.noteDocument(ev);
      from = page.end;
      if (!from || !(page.chunk || []).length) break;
    }
    this.renderDocuments();
  }

  async fetchOriginal(eventId) {
    if (this.fetching && this.fetching.has(eventId)) return;
    this.fetching = this.fetching || new Set();
    this.fetching.add(eventId);
    try {
      const ev = await this.session.event(this.chatId, eventId);
      this.events.set(ev.event_id, ev);
      this.rerenderWhere((other) => other.content && other.content["m.relates_to"] && JSON.stringify(other.content["m.relates_to"]).includes(eventId));
      this.renderPinned();
    } catch { /* gone or out of reach: the quote stays empty */ }
  }

  // -- the event model -----------------------------------------------------------------------

  // Records an event; returns true for a message to show as its own line.
  ingest(ev, older = false) {
    const rel = (ev.content && ev.content["m.relates_to"]) || {};
    switch (ev.type) {
      case "m.room.message":
        if (rel.rel_type === "m.replace" && rel.event_id) {
          if (ev.content["m.new_content"] && !isDeleted(ev)) this.edits.set(rel.event_id, ev.content["m.new_content"]);
          return false;
        }
        this.noteDocument(ev);
        if (this.events.has(ev.event_id) && this.order.includes(ev.event_id)) {
          this.events.set(ev.event_id, ev);
          return false;
        }
        this.events.set(ev.event_id, ev);
        return true;
      case "m.reaction":
        if (rel.rel_type === "m.annotation" && rel.event_id && !isDeletedReaction(ev)) this.addReaction(ev.event_id, rel.event_id, rel.key, ev.sender);
        return false;
      case "m.room.redaction": {
        const target = ev.redacts || (ev.content && ev.content.redacts);
        if (this.reactionIndex.has(target)) this.removeReaction(target);
        const message = this.events.get(target);
        if (message && !older) {
          this.events.set(target, { ...message, content: {}, unsigned: { ...(message.unsigned || {}), redacted_because: ev } });
          this.documents.delete(target);
        }
        return false;
      }
      case "m.room.pinned_events":
        if (!older) this.pinned = (ev.content && ev.content.pinned) || [];
        return false;
      case "org.practicebridge.policy":
        if (!older) { this.policy = ev.content; this.composer.policyChanged(); }
        return false;
      default:
        return false;
    }
  }

  addReaction(reactionId, target, key, sender) {
    if (!this.reactions.has(target)) this.reactions.set(target, new Map());
    const byKey = this.reactions.get(target);
    if (!byKey.has(key)) byKey.set(key, new Map());
    byKey.get(key).set(sender, reactionId);
    this.reactionIndex.set(reactionId, { target, key, sender });
  }

  removeReaction(reactionId) {
    const { target, key, sender } = this.reactionIndex.get(reactionId);
    this.reactionIndex.delete(reactionId);
    const senders = this.reactions.get(target) && this.reactions.get(target).get(key);
    if (senders && senders.get(sender) === reactionId) senders.delete(sender);
    return target;
  }

  noteDocument(ev) {
    const c = ev.content || {};
    if ((c.msgtype === "m.file" || c.msgtype === "m.image" || c.msgtype === "m.video") && c.url && !isDeleted(ev)) this.documents.set(ev.event_id, ev);
  }

  // Live events from the sync loop.
  live(events, receipts, limited) {
    if (this.closed) return;
    if (limited) {
      // A gap: start again from the latest page.
      Object.assign(this, { events: new Map(), order: [], reactions: new Map(), reactionIndex: new Map(), edits: new Map(), atStart: false });
      this.open();
      return;
    }
    const touched = new Set();
    let pinsChanged = false;
    const wasAtBottom = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 80;
    for (const ev of events) {
      const rel = (ev.content && ev.content["m.relates_to"]) || {};
      if (ev.type === "m.room.pinned_events") pinsChanged = true;
      const target = ev.type === "m.room.redaction" ? (ev.redacts || (ev.content && ev.content.redacts)) : rel.event_id;
      const reactionTarget = ev.type === "m.room.redaction" && this.reactionIndex.has(target) ? this.reactionIndex.get(target).target : null;
      if (this.ingest(ev)) {
        this.order.push(ev.event_id);
        this.appendOne(ev.event_id);
      } else if (this.order.includes(ev.event_id)) {
        touched.add(ev.event_id);
      }
      if (target) touched.add(target);
      if (reactionTarget) touched.add(reactionTarget);
    }
    for (const receipt of receipts) this.readBy(receipt.content);
    for (const id of touched) this.rerender(id);
    if (pinsChanged) { this.rerenderWhere(() => true); this.renderPinned(); }
    this.renderDocuments();
    if (wasAtBottom) this.scroller.scrollTop = this.scroller.scrollHeight;
    this.sendReceipt();
  }

  readBy(content) {
    const clients = (this.policy && this.policy.client_user_ids) || [];
    for (const [eventId, types] of Object.entries(content || {})) {
      const readers = (types && types["m.read"]) || {};
      for (const [user, data] of Object.entries(readers)) {
        if (!clients.includes(user)) continue;
        const ev = this.events.get(eventId);
        this.clientReadTs = Math.max(this.clientReadTs, ev ? ev.origin_server_ts : (data.ts || 0));
      }
    }
    this.refreshReceipts();
  }

  refreshReceipts() {
    for (const el of this.timeline.querySelectorAll(".msg.own")) {
      const receipt = el.querySelector(".receipt");
      if (receipt) receipt.classList.toggle("hidden", Number(el.dataset.ts) > this.clientReadTs);
    }
  }

  sendReceipt() {
    if (this.closed || document.visibilityState !== "visible") return;
    const latest = [...this.order].reverse().map((id) => this.events.get(id)).find((ev) => ev && ev.sender !== this.session.userId);
    if (!latest || latest.event_id === this.lastReceipt) return;
    this.lastReceipt = latest.event_id;
    const type = this.app.isStaff ? "m.read.private" : "m.read";
    this.session.receipt(this.chatId, latest.event_id, type).catch(() => { this.lastReceipt = null; });
  }

  // -- drawing -------------------------------------------------------------------------------

  renderAll() {
    const nodes = [];
    let lastDay = null;
    for (const id of this.order) {
      const ev = this.events.get(id);
      const d = day(ev.origin_server_ts);
      if (d !== lastDay) nodes.push(h("div", { class: "day", text: d }));
      lastDay = d;
      nodes.push(this.renderer.render(ev));
    }
    this.timeline.replaceChildren(...nodes);
    this.refreshReceipts();
  }

  appendOne(id) {
    const ev = this.events.get(id);
    const prev = this.order.length > 1 ? this.events.get(this.order[this.order.length - 2]) : null;
    if (!prev || day(prev.origin_server_ts) !== day(ev.origin_server_ts)) this.timeline.append(h("div", { class: "day", text: day(ev.origin_server_ts) }));
    this.timeline.append(this.renderer.render(ev));
    this.refreshReceipts();
  }

  rerender(id) {
    const old = this.timeline.querySelector(`.msg[data-event-id="${CSS.escape(id)}"]`);
    const ev = this.events.get(id);
    if (old && ev) old.replaceWith(this.renderer.render(ev));
    this.refreshReceipts();
  }

  rerenderWhere(test) {
    for (const id of this.order) if (test(this.events.get(id))) this.rerender(id);
  }

  scrollTo(eventId) {
    const el = this.timeline.querySelector(`.msg[data-event-id="${CSS.escape(eventId)}"]`);
    if (!el) { toast("That message is further back: scroll up to find it."); return; }
    el.scrollIntoView({ block: "center", behavior: "smooth" });
    el.classList.add("flash");
    setTimeout(() => el.classList.remove("flash"), 1500);
  }

  renderPinned() {
    const items = this.pinned.map((id) => {
      const ev = this.events.get(id);
      if (!ev) this.fetchOriginal(id);
      return h("li", { class: "pinned-item", dataset: { eventId: id } },
        h("button", { type: "button", class: "pinned-open", onclick: () => this.scrollTo(id) },
          h("span", { class: "pinned-sender", text: ev ? this.nameOf(ev.sender) : "" }),
          h("span", { class: "pinned-text", text: snippet(ev) })),
        this.canPin() ? iconButton("close", "Unpin message", () => this.setPinned(id, false), "unpin") : null);
    });
    this.pinnedList.replaceChildren(...(items.length ? items : [h("li", { class: "panel-none", text: this.canPin() ? "No pinned messages. Pin one from its menu." : "No pinned messages." })]));
  }

  renderDocuments() {
    const docs = [...this.documents.values()].sort((a, b) => b.origin_server_ts - a.origin_server_ts);
    const items = docs.map((ev) => {
      const c = ev.content;
      const name = c.filename || c.body || "Document";
      return h("li", { class: "doc-item" },
        h("span", { class: "file-icon" }, icon(c.msgtype === "m.image" ? "camera" : "file")),
        h("span", { class: "doc-text" }, h("span", { class: "doc-name", text: name }), h("span", { class: "doc-meta", text: `${this.nameOf(ev.sender)} · ${size((c.info || {}).size)}` })),
        iconButton("download", `Download ${name}`, () => this.renderer.download(c), "doc-download"));
    });
    this.docList.replaceChildren(...(items.length ? items : [h("li", { class: "panel-none", text: "No documents shared yet." })]));
  }

  // -- actions -------------------------------------------------------------------------------

  async toggleReaction(eventId, key) {
    const mine = this.reactions.get(eventId) && this.reactions.get(eventId).get(key) && this.reactions.get(eventId).get(key).get(this.session.userId);
    try {
      if (mine) {
        await this.session.redact(this.chatId, mine);
        this.removeReaction(mine);
      } else {
        const sent = await this.session.send(this.chatId, "m.reaction", { "m.relates_to": { rel_type: "m.annotation", event_id: eventId, key } });
        this.addReaction(sent.event_id, eventId, key, this.session.userId);
      }
      this.rerender(eventId);
    } catch (e) {
      this.app.fail(e);
    }
  }

  async setPinned(eventId, on) {
    try {
      const current = await this.session.state(this.chatId, "m.room.pinned_events");
      const pinned = ((current && current.pinned) || []).filter((id) => id !== eventId);
      if (on) pinned.push(eventId);
      await this.session.putState(this.chatId, "m.room.pinned_events", { pinned });
      this.pinned = pinned;
      this.rerenderWhere(() => true);
      this.renderPinned();
      if (on) this.togglePanel(true);
    } catch (e) {
      this.app.fail(e);
    }
  }

  async deleteMessage(ev) {
    if (!(await confirm("Delete this message?", "It is removed for everyone in the chat.", "Delete"))) return;
    try {
      await this.session.redact(this.chatId, ev.event_id);
      this.events.set(ev.event_id, { ...ev, content: {}, unsigned: { redacted_because: {} } });
      this.documents.delete(ev.event_id);
      this.rerender(ev.event_id);
      this.renderDocuments();
    } catch (e) {
      this.app.fail(e);
    }
  }

  // A message this person just sent, shown before the sync loop brings it back.
  echo(eventId, type, content) {
    if (this.events.has(eventId)) return;
    const ev = { event_id: eventId, type, content, sender: this.session.userId, origin_server_ts: Date.now(), unsigned: {} };
    if (this.ingest(ev)) {
      this.order.push(eventId);
      this.appendOne(eventId);
      this.renderDocuments();
      this.scroller.scrollTop = this.scroller.scrollHeight;
    }
  }

  async share() {
    const b = await this.app.contacts.data();
    if (!b.team_members.length) { toast("There is no team member to share with."); return; }
    const select = h("select", { class: "choose-staff", "aria-label": "Team member" }, b.team_members.map((s) => h("option", { value: s.staff_id, text: s.name })));
    const staffId = await dialog("Share this chat", h("label", { class: "field" }, "With", select), [["Cancel", null], ["Share", () => select.value, "primary"]]);
    if (!staffId) return;
    try {
      await this.session.provision("POST", `/chats/${q(this.chatId)}/share`, { staff_id: staffId });
      toast("The chat is shared.");
      this.app.list.load();
    } catch (e) {
      this.app.fail(e);
    }
  }

  async convert() {
    const exclude = new Set(this.chat.members.map((m) => (m.kind === "client" ? `client:${m.client_id}` : `staff:${m.staff_id}`)));
    const body = await this.app.contacts.pickPeople("Make a group chat", "Make group", { withName: true, exclude });
    if (!body) return;
    try {
      await this.session.provision("POST", `/chats/${q(this.chatId)}/convert`, body);
      this.app.contacts.body = null;
      await this.app.list.load();
    } catch (e) {
      this.app.fail(e);
    }
  }

  gone() {
    this.close();
    this.app.chatView = null;
    this.app.main.replaceChildren(h("div", { class: "empty-main" }, h("p", { text: "This chat is no longer available." })));
  }

  close() {
    this.closed = true;
    this.composer.close();
    this.renderer.release();
    document.removeEventListener("visibilitychange", this.onVisible);
  }
}

function isDeletedReaction(ev) {
  return Boolean(ev.unsigned && ev.unsigned.redacted_because) || !ev.content || !ev.content["m.relates_to"];
}

function findPerson(contacts, userId) {
  for (const c of contacts.clients) {
    if (c.user_id === userId) return c;
  }
  return contacts.team_members.find((s) => s.user_id === userId) || null;
}

function findClient(contacts, clientId) {
  for (const c of contacts.clients) {
    if (c.client_id === clientId) return c;
  }
  return null;
}
