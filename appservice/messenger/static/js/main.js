// The Messenger inside its frame: waits for the portal page to hand over the session, then runs
// the chat list, contacts, an open chat and the settings, with one /sync loop for live updates.

import { Session, ApiError, SignedOut } from "./api.js";
import { h, icon, iconButton, setDialogLayer, toast } from "./dom.js";
import { ChatList } from "./chatlist.js";
import { Contacts } from "./contacts.js";
import { ChatView } from "./chat.js";
import { SettingsView } from "./settings.js";
import { SyncLoop } from "./sync.js";

const PROTOCOL = "practice-messenger";
// The bridge writes its provisioning API's prefix into the page it serves.
const PREFIX = document.querySelector('meta[name="provisioning-prefix"]').content;

class Messenger {
  constructor(root, parentOrigin, layout, state) {
    this.root = root;
    this.parentOrigin = parentOrigin;
    this.layout = layout === "tab" ? "tab" : "page";
    this.tabState = state || "docked";
    this.settings = null;
    this.role = null;
    this.view = "chats";
    this.chatView = null;
    this.unread = -1;
    this.build();
  }

  async start(sessionData) {
    performance.mark("messenger:session");
    this.session = new Session(sessionData, location.origin + PREFIX, () => this.signedOut());
    this.list = new ChatList(this, this.listPane);
    this.contacts = new Contacts(this, this.contactsPane);
    // The portal (and bench/messenger.py) learn when the first screenful of the list is drawn.
    this.list.onShown = (count) => this.report("list-shown", { chats: count });
    // The list's first page has the bridge to itself; nothing on it needs the settings.
    await this.list.load();
    await this.loadSettings();
    if (this.settings && this.settings.open_recent_chat && !this.chatView) {
      const recent = this.list.mostRecent();
      if (recent) this.openChat(recent.chat_id);
    }
    this.sync = new SyncLoop(this);
    this.sync.start();
  }

  async loadSettings() {
    try {
      this.settings = await this.session.provision("GET", "/settings");
      this.role = this.settings.role || (this.settings.autoresponder ? "practitioner" : "client");
      this.root.classList.toggle("is-staff", this.isStaff);
      this.updateUnread(this.list ? this.list.unreadTotal() : 0);
    } catch (e) {
      this.fail(e);
    }
  }

  get isStaff() { return this.role !== null && this.role !== "client"; }
  get isOwner() { return this.role === "owner"; }

  // -- the frame ---------------------------------------------------------------------------

  build() {
    const layer = h("div", { class: "layer" });
    setDialogLayer(layer);
    this.badge = h("span", { class: "tab-badge hidden" });
    this.tabBar = h("header", { class: "tab-bar" },
      h("button", { type: "button", class: "tab-title", onclick: () => this.setTabState(this.tabState === "minimised" ? "docked" : "minimised") },
        icon("chat"), h("span", { text: "Messages" }), this.badge),
      h("span", { class: "spacer" }),
      this.expandButton = iconButton("expand", "Expand to full page", () => this.setTabState(this.tabState === "expanded" ? "docked" : "expanded"), "tab-expand"),
      this.minimiseButton = iconButton("minimise", "Minimise", () => this.setTabState("minimised"), "tab-minimise"));
    this.listPane = h("div", { class: "pane-body list-pane" });
    this.contactsPane = h("div", { class: "pane-body contacts-pane hidden" });
    this.navButtons = {};
    const nav = h("nav", { class: "views", "aria-label": "Messages" },
      ["chats", "contacts", "settings"].map((view) => {
        const label = { chats: "Chats", contacts: "Contacts", settings: "Settings" }[view];
        const button = h("button", { type: "button", class: `view-${view}`, "aria-pressed": String(view === "chats"), onclick: () => this.show(view) },
          icon({ chats: "chat", contacts: "people", settings: "gear" }[view]), h("span", { text: label }));
        this.navButtons[view] = button;
        return button;
      }));
    this.sidebar = h("aside", { class: "sidebar" }, nav, this.listPane, this.contactsPane);
    this.main = h("main", { class: "main" }, this.emptyState());
    this.status = h("div", { class: "connection hidden", role: "status" });
    this.root.replaceChildren(this.tabBar, h("div", { class: "shell" }, this.sidebar, this.main), this.status, layer);
    this.root.classList.add(`layout-${this.layout}`);
    this.applyTabState();
    new ResizeObserver(() => this.root.classList.toggle("narrow", this.root.clientWidth < 700)).observe(this.root);
  }

  emptyState() {
    return h("div", { class: "empty-main" }, icon("chat"), h("p", { text: "Choose a chat, or start one from Contacts." }));
  }

  setTabState(state) {
    this.tabState = state;
    this.applyTabState();
    this.post("layout", { state });
  }

  applyTabState() {
    for (const s of ["docked", "expanded", "minimised"]) this.root.classList.toggle(`tab-${s}`, this.layout === "tab" && this.tabState === s);
    this.expandButton.title = this.tabState === "expanded" ? "Back to the tab" : "Expand to full page";
    this.expandButton.setAttribute("aria-label", this.expandButton.title);
  }

  // -- views -------------------------------------------------------------------------------

  show(view) {
    this.view = view;
    for (const [name, button] of Object.entries(this.navButtons)) button.setAttribute("aria-pressed", String(name === view));
    this.listPane.classList.toggle("hidden", view === "contacts");
    this.contactsPane.classList.toggle("hidden", view !== "contacts");
    if (view === "contacts") this.contacts.load();
    if (view === "settings") {
      this.closeChat();
      const settings = new SettingsView(this);
      this.main.replaceChildren(settings.el);
      this.root.classList.add("show-main");
    } else if (!this.chatView) {
      this.main.replaceChildren(this.emptyState());
      this.root.classList.remove("show-main");
    }
  }

  async openChat(chatId) {
    if (this.chatView && this.chatView.chatId === chatId) { this.root.classList.add("show-main"); return; }
    this.closeChat();
    if (this.view === "settings") this.show("chats");
    const chat = this.list.byId(chatId) || (await this.list.fetchOne(chatId));
    if (!chat) { toast("This chat is no longer available.", "error"); return; }
    this.chatView = new ChatView(this, chat);
    this.main.replaceChildren(this.chatView.el);
    this.root.classList.add("show-main");
    this.list.markActive(chatId);
    await this.chatView.open();
  }

  closeChat() {
    if (this.chatView) this.chatView.close();
    this.chatView = null;
    this.list && this.list.markActive(null);
    this.root.classList.remove("show-main");
    if (this.view !== "settings") this.main.replaceChildren(this.emptyState());
  }

  // -- alerts and the portal ---------------------------------------------------------------

  updateUnread(count) {
    const alerts = !this.settings || this.settings.portal_alerts !== false;
    const shown = alerts ? count : 0;
    this.badge.textContent = shown > 99 ? "99+" : String(shown);
    this.badge.classList.toggle("hidden", !shown);
    if (shown === this.unread) return;
    this.unread = shown;
    this.post("unread", { count: shown, alerts });
  }

  post(type, data = {}) {
    if (window.parent !== window && this.parentOrigin) {
      window.parent.postMessage({ source: PROTOCOL, type, ...data }, this.parentOrigin);
    }
  }

  report(what, data) {
    this.post("event", { what, ...data });
  }

  connection(text) {
    this.status.textContent = text || "";
    this.status.classList.toggle("hidden", !text);
  }

  fail(error) {
    if (error instanceof SignedOut || (this.session && this.session.signedOut)) return;
    toast(error instanceof ApiError ? error.message : "Something went wrong; try again.", "error");
  }

  signedOut() {
    if (this.sync) this.sync.stop();
    if (this.chatView) this.chatView.close();
    this.root.replaceChildren(h("div", { class: "signed-out", role: "alert" },
      icon("chat"),
      h("h2", { text: "You are signed out of messaging" }),
      h("p", { text: "Your session has ended. Reload the page or sign in to the portal again to continue." })));
    this.post("signed-out");
    this.updateUnread(0);
  }
}

function boot() {
  performance.mark("messenger:boot");
  const root = document.getElementById("app");
  if (window.parent === window) {
    root.replaceChildren(h("div", { class: "signed-out" },
      h("h2", { text: "The Messenger opens inside your portal" }),
      h("p", { text: "Open Messages from the portal you use with your practice." })));
    return;
  }
  let messenger = null;
  window.addEventListener("message", (event) => {
    // Only the page that embeds this frame may hand over a session or drive the layout.
    if (event.source !== window.parent || !event.data || event.data.source !== PROTOCOL) return;
    const data = event.data;
    if (data.type === "session" && !messenger && data.session) {
      messenger = new Messenger(root, event.origin, data.layout, data.state);
      messenger.start(data.session).catch((e) => messenger.fail(e));
    } else if (data.type === "layout" && messenger) {
      messenger.tabState = data.state;
      messenger.applyTabState();
    }
  });
  window.parent.postMessage({ source: PROTOCOL, type: "ready" }, "*");
}

boot();
