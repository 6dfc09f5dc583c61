// The chat list, from the bridge's GET /chats: pinned chats first, then the latest message
// first, an unread badge per chat, the "Unread messages" filter, a star to pin, and a menu per
// chat (mark as unread, hide, delete, export). The first screenful is drawn from the first page
// of the answer; further rows are drawn, and further pages asked for (`next_batch` as `from`),
// as the person scrolls towards the end of the list, so a list of thousands costs its first
// screen and no more when the page opens.

import { h, icon, iconButton, avatar, when, confirm, toast, saveBlob, popup } from "./dom.js";
import { encode as q } from "./api.js";

const FIRST_SLICE = 60; // rows drawn at once, and the first page: more than a screenful
const SLICE = 100; // rows drawn, and the page asked for, each time the person nears the end
const AHEAD = "600px"; // how near the end "near" is
const PAGE_MAX = 1000; // pages read whole, not drawn (the unread count, a chat looked up)

export class ChatList {
  constructor(app, el) {
    this.app = app;
    this.el = el;
    this.chats = []; // the chats of the pages fetched so far, in list order
    this.next = null; // the cursor of the next page, while there is one
    this.drawn = 0; // rows on the page: the first `drawn` of `chats`
    this.total = null; // unread messages over the whole list, once counted
    this.filter = "all";
    this.includeHidden = false;
    this.active = null;
    this.timer = null;
    this.generation = 0;
    this.fetching = null;
    this.tabs = {};
    const tab = (filter, label) => (this.tabs[filter] = h("button", { type: "button", class: "filter", "aria-pressed": String(filter === "all"), onclick: () => this.setFilter(filter) }, label));
    this.hiddenToggle = h("input", { type: "checkbox", class: "show-hidden", onchange: () => { this.includeHidden = this.hiddenToggle.checked; this.load(); } });
    this.rows = h("ul", { class: "chat-list", "aria-label": "Chats" });
    this.empty = h("p", { class: "list-empty hidden" });
    this.end = h("div", { class: "list-end", "aria-hidden": "true" });
    el.append(
      h("div", { class: "list-head" },
        h("div", { class: "filters", role: "group", "aria-label": "Show" }, tab("all", "All"), tab("unread", "Unread messages")),
        h("label", { class: "hidden-switch" }, this.hiddenToggle, "Show hidden")),
      this.rows, this.empty, this.end);
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) this.more();
    }, { root: el, rootMargin: `0px 0px ${AHEAD} 0px` });
    this.observer.observe(this.end);
  }

  setFilter(filter) {
    this.filter = filter;
    for (const [name, button] of Object.entries(this.tabs)) button.setAttribute("aria-pressed", String(name === filter));
    this.load();
  }

  query(from = null, filter = this.filter, limit = from ? SLICE : FIRST_SLICE) {
    const params = new URLSearchParams({ filter, limit: String(limit) });
    if (this.includeHidden) params.set("include_hidden", "true");
    if (from) params.set("from", from);
    return params;
  }

  // The list from its first page; a refresh asks for as many chats as the person has scrolled
  // through, so the rows under their eyes stay.
  async load() {
    const generation = ++this.generation;
    const keep = Math.max(this.drawn, FIRST_SLICE);
    try {
      performance.mark("messenger:chats-requested");
      let body = await this.app.session.provision("GET", `/chats?${this.query()}`);
      performance.mark("messenger:chats-received");
      const chats = [...body.chats];
      while (body.next_batch && chats.length < keep) {
        body = await this.app.session.provision("GET", `/chats?${this.query(body.next_batch)}`);
        if (generation !== this.generation) return;
        chats.push(...body.chats);
      }
      if (generation !== this.generation) return;
      this.chats = chats;
      this.next = body.next_batch || null;
      this.render(keep);
      if (this.app.chatView) this.app.chatView.listChanged(this.byId(this.app.chatView.chatId));
      this.countUnread(generation).catch((e) => this.app.fail(e));
    } catch (e) {
      this.app.fail(e);
    }
  }

  // The badge counts every unread chat: from the list when it is whole, otherwise from the
  // unread chats alone (a short list), asked for once the first screen is drawn.
  async countUnread(generation) {
    let chats = this.chats;
    if (this.next) {
      chats = await this.all(this.query(null, "unread", PAGE_MAX));
      if (generation !== this.generation) return;
    }
    this.total = unreadTotal(chats);
    this.app.updateUnread(this.total);
  }

  async all(params) {
    const chats = [];
    let from = null;
    do {
      if (from) params.set("from", from);
      const body = await this.app.session.provision("GET", `/chats?${params}`);
      chats.push(...body.chats);
      from = body.next_batch || null;
    } while (from);
    return chats;
  }

  refreshSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), 250);
  }

  // A chat that is not among the pages fetched (opened from a link, or just created).
  async fetchOne(chatId) {
    const params = new URLSearchParams({ filter: "all", include_hidden: "true", limit: String(PAGE_MAX) });
    let from = null;
    do {
      if (from) params.set("from", from);
      const body = await this.app.session.provision("GET", `/chats?${params}`);
      const chat = body.chats.find((c) => c.chat_id === chatId);
      if (chat) return chat;
      from = body.next_batch || null;
    } while (from);
    return null;
  }

  byId(chatId) {
    return this.chats.find((c) => c.chat_id === chatId) || null;
  }

  // The first page holds the pinned chats and the latest of the others.
  mostRecent() {
    return this.chats.reduce((best, c) => (!best || (c.last_message_ts || 0) > (best.last_message_ts || 0) ? c : best), null);
  }

  unreadTotal() {
    return this.total === null ? unreadTotal(this.chats) : this.total;
  }

  render(count) {
    this.drawn = Math.min(count, this.chats.length);
    this.rows.replaceChildren(...this.chats.slice(0, this.drawn).map((c) => this.row(c)));
    this.empty.textContent = this.filter === "unread" ? "No unread messages." : "No chats yet. Start one from Contacts.";
    this.empty.classList.toggle("hidden", this.chats.length > 0);
    if (this.onShown) {
      const shown = this.onShown;
      this.onShown = null;
      performance.mark("messenger:list-drawn");
      requestAnimationFrame(() => shown(this.drawn));
    }
    this.watchEnd();
  }

  // The person neared the end of the list: draw the next rows, fetching a page if need be.
  async more() {
    if (this.drawn >= this.chats.length && this.next && !this.fetching) {
      const generation = this.generation;
      this.fetching = this.app.session.provision("GET", `/chats?${this.query(this.next)}`);
      try {
        const body = await this.fetching;
        if (generation !== this.generation) return;
        this.chats.push(...body.chats);
        this.next = body.next_batch || null;
      } catch (e) {
        this.app.fail(e);
        return;
      } finally {
        this.fetching = null;
      }
    }
    if (this.drawn >= this.chats.length) return;
    const slice = this.chats.slice(this.drawn, this.drawn + SLICE);
    this.drawn += slice.length;
    this.rows.append(...slice.map((c) => this.row(c)));
    this.watchEnd();
  }

  // Observed afresh, the end of the list reports at once if it is still in reach.
  watchEnd() {
    this.observer.unobserve(this.end);
    if (this.drawn < this.chats.length || this.next) this.observer.observe(this.end);
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

function unreadTotal(chats) {
  return chats.reduce((n, c) => n + (c.unread ? Math.max(1, c.unread_count || 0) : 0), 0);
}

export function closeMenus() {
  for (const menu of document.querySelectorAll(".menu")) menu.remove();
}
