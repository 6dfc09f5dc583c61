// Telehealth & Messaging settings: every setting of GET /settings for the person, the
// autoresponder and its schedule for staff, the practice's rules for the owner; Save Changes
// sends them with PUT /settings and shows the refusal's sentence if one comes.

import { h, iconButton, toast } from "./dom.js";

const DAYS = [["mon", "Monday"], ["tue", "Tuesday"], ["wed", "Wednesday"], ["thu", "Thursday"], ["fri", "Friday"], ["sat", "Saturday"], ["sun", "Sunday"]];
const MAX_PERIODS = 5;

export class SettingsView {
  constructor(app) {
    this.app = app;
    this.s = structuredClone(app.settings || {});
    this.error = h("p", { class: "settings-error hidden", role: "alert" });
    this.saved = h("span", { class: "saved hidden", role: "status", text: "Saved." });
    this.el = h("section", { class: "settings" });
    this.render();
  }

  render() {
    const s = this.s;
    const check = (name, label, hint, on, set) => h("label", { class: "toggle" },
      h("input", { type: "checkbox", name, checked: on, onchange: (e) => set(e.target.checked) }),
      h("span", { class: "toggle-text" }, h("span", { class: "toggle-label", text: label }), hint ? h("span", { class: "hint", text: hint }) : null));
    const radio = (name, value, label, current, set) => h("label", { class: "radio" },
      h("input", { type: "radio", name, value, checked: current === value, onchange: () => set(value) }), label);
    const messaging = h("fieldset", { class: "card" },
      h("legend", { text: "Messaging" }),
      h("div", { class: "field-group", role: "radiogroup", "aria-label": "Enter key" },
        h("span", { class: "group-label", text: "The Enter key" }),
        radio("enter_key", "send", "sends the message (Shift+Enter for a new line)", s.enter_key, (v) => { s.enter_key = v; }),
        radio("enter_key", "newline", "starts a new line (Shift+Enter sends)", s.enter_key, (v) => { s.enter_key = v; })),
      check("open_recent_chat", "Open the most recent chat", "When Messages opens, show the chat with the latest message.", s.open_recent_chat, (v) => { s.open_recent_chat = v; }),
      check("portal_alerts", "In-portal alerts", "A badge with the number of unread messages in the page title and the Messages tab.", s.portal_alerts, (v) => { s.portal_alerts = v; }),
      check("email_alerts", "Email alerts", "An email when a message stays unread.", s.email_alerts, (v) => { s.email_alerts = v; }));
    const parts = [h("header", { class: "settings-head" }, iconButton("back", "Back to chats", () => this.app.show("chats"), "settings-back"), h("h2", { text: "Telehealth & Messaging" }), h("p", { class: "hint", text: "Your messaging preferences." })), messaging];
    if (s.autoresponder) parts.push(this.autoresponder(check));
    if (this.app.isOwner && s.practice) parts.push(this.practice(check));
    parts.push(h("div", { class: "settings-actions" },
      h("button", { type: "button", class: "primary save", onclick: () => this.save() }, "Save Changes"), this.saved), this.error);
    this.el.replaceChildren(...parts);
  }

  autoresponder(check) {
    const a = this.s.autoresponder;
    const message = h("textarea", { name: "autoresponder_message", rows: "3", maxlength: "2000", "aria-label": "Automatic reply", oninput: (e) => { a.message = e.target.value; } });
    message.value = a.message || "";
    const periods = h("div", { class: "periods" });
    const draw = () => {
      periods.replaceChildren(...a.periods.map((p, i) => h("div", { class: "period" },
        h("select", { "aria-label": "Day", onchange: (e) => { p.day = e.target.value; } }, DAYS.map(([value, label]) => h("option", { value, selected: p.day === value, text: label }))),
        timeInput("From", p.start, (v) => { p.start = v; }),
        h("span", { text: "to" }),
        timeInput("Until", p.end, (v) => { p.end = v; }),
        h("button", { type: "button", class: "link remove-period", onclick: () => { a.periods.splice(i, 1); draw(); } }, "Remove"))));
      if (!a.periods.length) periods.append(h("p", { class: "hint", text: "No schedule: the automatic reply is always on while enabled." }));
      add.disabled = a.periods.length >= MAX_PERIODS;
    };
    const add = h("button", { type: "button", class: "secondary add-period", onclick: () => { a.periods.push({ day: "sat", start: "00:00", end: "24:00" }); draw(); } }, "Add a time");
    draw();
    return h("fieldset", { class: "card" },
      h("legend", { text: "Automatic reply" }),
      check("autoresponder_enabled", "Answer clients automatically", "Once per client every 30 minutes, in 1:1 chats, during the times below.", a.enabled, (v) => { a.enabled = v; }),
      h("label", { class: "field" }, "Message", message),
      h("div", { class: "field-group" }, h("span", { class: "group-label", text: `Schedule (up to ${MAX_PERIODS} times)` }), periods, add));
  }

  practice(check) {
    const p = this.s.practice;
    const limit = h("input", { type: "number", name: "client_message_limit", min: "1", max: "100000", placeholder: "No limit", "aria-label": "Client message limit",
      oninput: (e) => { p.client_message_limit = e.target.value === "" ? null : Number(e.target.value); } });
    if (p.client_message_limit) limit.value = String(p.client_message_limit);
    return h("fieldset", { class: "card" },
      h("legend", { text: "Practice (owner)" }),
      h("label", { class: "field inline" }, "Longest client message (characters)", limit),
      check("allow_direct_chat_sharing", "Team members may be given access to 1:1 chats", null, p.allow_direct_chat_sharing, (v) => { p.allow_direct_chat_sharing = v; }),
      check("disable_direct_chat_for_new_clients", "New clients cannot start 1:1 chats", null, p.disable_direct_chat_for_new_clients, (v) => { p.disable_direct_chat_for_new_clients = v; }),
      check("clients_may_export", "Clients may export their chats", null, p.clients_may_export, (v) => { p.clients_may_export = v; }),
      check("email_include_content_staff", "Message text in emails to the team", "Email is not secure: only turn this on if the practice accepts that.", p.email_include_content.staff, (v) => { p.email_include_content.staff = v; }),
      check("email_include_content_clients", "Message text in emails to clients", "Email is not secure: only turn this on if the practice accepts that.", p.email_include_content.clients, (v) => { p.email_include_content.clients = v; }));
  }

  async save() {
    const s = this.s;
    const body = { enter_key: s.enter_key, open_recent_chat: s.open_recent_chat, portal_alerts: s.portal_alerts, email_alerts: s.email_alerts };
    if (s.autoresponder) body.autoresponder = s.autoresponder;
    if (this.app.isOwner && s.practice) body.practice = s.practice;
    this.error.classList.add("hidden");
    this.saved.classList.add("hidden");
    try {
      this.app.settings = await this.app.session.provision("PUT", "/settings", body);
      this.s = structuredClone(this.app.settings);
      this.render();
      this.saved.classList.remove("hidden");
      this.app.updateUnread(this.app.list.unreadTotal());
      toast("Your settings are saved.");
    } catch (e) {
      if (this.app.session.signedOut) return;
      this.error.textContent = e.message;
      this.error.classList.remove("hidden");
    }
  }
}

function timeInput(label, value, set) {
  return h("input", { type: "text", class: "time", "aria-label": label, value, inputmode: "numeric", pattern: "[0-2][0-9]:[0-5][0-9]", size: "5", oninput: (e) => set(e.target.value) });
}
