// The chat list, from the bridge's GET /chats: pinned chats first, then the latest message
// first, an unread badge per chat, the "Unread messages" filter, a star to pin, and a menu per
// chat (mark as unread, hide, delete, export). Rows are drawn in slices, so a list of
// thousands is on screen as soon as its first screenful is.

import { h, icon, iconButton, avatar, when, confirm, toast, saveBlob, popup } from "./dom.js";
import { encode as q } from "./api.js";

const FIRST_SLICE = 60;
const SLICE = 400;
const REST_PAGE = 1000;

export class ChatList {
  constructor(app, el) {
    this.app = app;
    this.el = el;
    this.chats = [];
    this.filter = "all";
    this.includeHidden = false;
    this.active = null;
    this.timer = null;
    this.generation = 0;
    this.tabs = {};
    const tab = (filter, label) => (this.tabs[filter] = h("button", { type: "button", class: "filter", "aria-pressed": String(filter === "all"), onclick: () => this.setFilter(filter) }, label));
    this.hiddenToggle = h("input", { type: "checkbox", class: "show-hidden", onchange: () => { this.includeHidden = this.hiddenToggle.checked; this.load(); } });
    this.rows = h("ul", { class: "chat-list", "aria-label": "Chats" });
    this.empty = h("p", { class: "list-empty hidden" });
    el.append(
      h("div", { class: "list-head" },
        h("div", { class: "filters", role: "group", "aria-label": "Show" }, tab("all", "All"), tab("unread", "Unread messages")),
        h("label", { class: "hidden-switch" }, this.hiddenToggle, "Show hidden")),
      this.rows, this.empty);
  }

  setFilter(filter) {
    this.filter = filter;
    for (const [name, button] of Object.entries(this.tabs)) button.setAttribute("aria-pressed", String(name === filter));
    this.load();
  }

  query() {
    const params = new URLSearchParams({ filter: this.filter });
    if (this.includeHidden) params.set("include_hidden", "true");
    return params;
  }

  // Every page of the list, drawn as it arrives (the API may hand it out in pages).
  async load() {
    const generation = ++this.generation;
    try {
      const chats = [];
      let from = null;
      do {
        const params = this.query();
        // A screenful first, then the rest in large pages.
        params.set("limit", String(from ? REST_PAGE : FIRST_SLICE));
        if (from) params.set("from", from);
        performance.mark("messenger:chats-requested");
        const body = await this.app.session.provision("GET", `/chats?${params}`);
        performance.mark("messenger:chats-received");
        if (generation !== this.generation) return;
        chats.push(...body.chats);
        if (!from) this.render(chats);
        else this.renderMore(body.chats);
        from = body.next_batch || null;
      } while (from);
      this.chats = chats;
      this.app.updateUnread(this.unreadTotal());
      if (this.app.chatView) this.app.chatView.listChanged(this.byId(this.app.chatView.chatId));
    } catch (e) {
      this.app.fail(e);
    }
  }

  refreshSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), 250);
  }

  async fetchOne(chatId) {
    let from = null;
    do {
      const params = new URLSearchParams({ filter: "all", include_hidden: "true", limit: String(REST_PAGE) });
      if (from) params.set("from", from);
      const body = await this.app.session.provision("GET", `/chats?${params}`);
      const found = body.chats.find((c) => c.chat_id === chatId);
      if (found) return found;
      from = body.next_batch || null;
    } while (from);
    return null;
  }

  byId(chatId) {
    return this.chats.find((c) => c.chat_id === chatId) || null;
  }

  mostRecent() {
    return this.chats.reduce((best, c) => (!best || (c.last_message_ts || 0) > (best.last_message_ts || 0) ? c : best), null);
  }

  unreadTotal() {
    return this.chats.reduce((n, c) => n + (c.unread ? Math.max(1, c.unread_count || 0) : 0), 0);
  }

  render(chats) {
    chats = chats.slice(); // later pages are drawn by renderMore, not by drawRest
    this.chats = chats;
    const first = chats.slice(0, FIRST_SLICE).map((c) => this.row(c));
    this.rows.replaceChildren(...first);
    this.empty.textContent = this.filter === "unread" ? "No unread messages." : "No chats yet. Start one from Contacts.";
    this.empty.classList.toggle("hidden", chats.length > 0);
    if (this.onShown) {
      const shown = this.onShown;
      this.onShown = null;
      performance.mark("messenger:list-drawn");
      requestAnimationFrame(() => shown(chats.length));
    }
    this.drawRest(chats, FIRST_SLICE, this.generation);
  }

  renderMore(chats) {
    this.rows.append(...chats.map((c) => this.row(c)));
  }

  drawRest(chats, start, generation) {
    if (start >= chats.length) return;
    requestAnimationFrame(() => {
      if (generation !== this.generation) return;
      this.rows.append(...chats.slice(start, start + SLICE).map((c) => this.row(c)));
      this.drawRest(chats, start + SLICE, generation);
    });
  }

  markActive(chatId) {
    this.active = chatId;
    for (const row of this.rows.children) row.classList.toggle("active", row.dataset.chatId === chatId);
  }

  // -- one chat ------------------------------------------------------------------------------

  // Staff are members of their chats by user id; a family primary answers for a family
  // member who has none, so the primary is not listed by their own id.
  staffView(chat) {
    return chat.members.some((m) => m.kind === "staff" && m.user_id === this.app.session.userId);
  }

  subtitle(chat) {
    const me = this.app.session.userId;
    const family = chat.members.find((m) => m.kind === "client" && m.family_primary_id);
    if (family) return this.staffView(chat) ? "Family member" : `about ${family.name}`;
    if (chat.kind === "group") {
      return chat.members.filter((m) => m.user_id !== me).map((m) => m.name).join(", ");
    }
    return chat.hidden ? "Hidden" : "";
  }

  title(chat) {
    return chat.name || "Chat";
  }

  row(chat) {
    const badge = chat.unread ? h("span", { class: "unread-badge", "aria-label": "unread" }, chat.unread_count ? String(chat.unread_count) : "") : null;
    const star = h("button", {
      type: "button", class: `star ${chat.pinned ? "on" : ""}`, "aria-pressed": String(chat.pinned),
      title: chat.pinned ? "Unpin chat" : "Pin chat", "aria-label": chat.pinned ? "Unpin chat" : "Pin chat",
      onclick: () => this.flag(chat, "pin", !chat.pinned),
    }, icon("star"));
    const subtitle = this.subtitle(chat);
    const name = this.title(chat);
    return h("li", { class: `chat-row ${chat.unread ? "unread" : ""} ${chat.chat_id === this.active ? "active" : ""} ${chat.hidden ? "is-hidden" : ""}`, dataset: { chatId: chat.chat_id } },
      h("button", { type: "button", class: "chat-open", onclick: () => this.app.openChat(chat.chat_id) },
        avatar(name),
        h("span", { class: "chat-text" },
          h("span", { class: "chat-name", text: name }),
          subtitle ? h("span", { class: "chat-sub", text: subtitle }) : null),
        h("span", { class: "chat-side" },
          h("span", { class: "chat-when", text: when(chat.last_message_ts) }),
          badge)),
      star,
      iconButton("more", "Chat options", (e) => this.menu(chat, e.currentTarget), "chat-menu"));
  }

  menu(chat, anchor, extra = []) {
    closeMenus();
    const item = (label, action, cls = "") => h("button", { type: "button", role: "menuitem", class: cls, onclick: () => { closeMenus(); action(); } }, label);
    const items = [
      ...extra.map(([label, action]) => item(label, action)),
      chat.unread ? item("Mark as read", () => this.flag(chat, "unread", false)) : item("Mark as unread", () => this.flag(chat, "unread", true)),
      chat.hidden ? item("Show in the list", () => this.flag(chat, "hide", false)) : item("Hide", () => this.flag(chat, "hide", true)),
      item("Export (spreadsheet)", () => this.exportChat(chat)),
    ];
    if (this.app.isStaff) items.push(item("Delete chat", () => this.deleteChat(chat), "danger"));
    popup(h("div", { class: "menu", role: "menu" }, items), anchor);
  }

  async flag(chat, what, on) {
    try {
      await this.app.session.provision(on ? "PUT" : "DELETE", `/chats/${q(chat.chat_id)}/${what}`);
      if (what === "hide" && on && this.app.chatView && this.app.chatView.chatId === chat.chat_id) this.app.closeChat();
      await this.load();
    } catch (e) {
      this.app.fail(e);
    }
  }

  async exportChat(chat) {
    try {
      const { blob, name } = await this.app.session.download(`/chats/${q(chat.chat_id)}/export?format=xlsx`);
      saveBlob(blob, name);
    } catch (e) {
      this.app.fail(e);
    }
  }

  async deleteChat(chat) {
    const ok = await confirm("Delete this chat?", `The chat "${this.title(chat)}" and its whole history are deleted for everyone in it, for good.`, "Delete for everyone");
    if (!ok) return;
    try {
      await this.app.session.provision("DELETE", `/chats/${q(chat.chat_id)}`);
      if (this.app.chatView && this.app.chatView.chatId === chat.chat_id) this.app.closeChat();
      toast("The chat was deleted.");
      await this.load();
    } catch (e) {
      this.app.fail(e);
    }
  }
}

export function closeMenus() {
  for (const menu of document.querySelectorAll(".menu")) menu.remove();
}
