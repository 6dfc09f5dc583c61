// Contacts (GET /contacts): Team Members, Groups and Clients (family members under their
// primary) as sections that open and close. Clicking a person opens the 1:1 chat with them or
// starts one (POST /chats/direct); when several fit, the person chooses (409 CHOOSE_CHAT).

import { h, icon, avatar, dialog, toast } from "./dom.js";

export class Contacts {
  constructor(app, el) {
    this.app = app;
    this.el = el;
    this.body = null;
    this.open = { team: true, groups: true, clients: true };
    this.loading = null;
  }

  async data() {
    if (!this.body) await this.load();
    return this.body;
  }

  load() {
    this.loading = this.loading || this.app.session.provision("GET", "/contacts")
      .then((body) => { this.body = body; this.render(); })
      .catch((e) => this.app.fail(e))
      .finally(() => { this.loading = null; });
    return this.loading;
  }

  staffName(staffId) {
    const staff = this.body && this.body.team_members.find((s) => s.staff_id === staffId);
    return staff ? staff.name : null;
  }

  render() {
    const b = this.body;
    const section = (key, title, items) => {
      const list = h("ul", { class: "contact-list" }, items.length ? items : h("li", { class: "contact-none", text: "Nobody yet." }));
      const toggle = h("button", { type: "button", class: "section-toggle", "aria-expanded": String(this.open[key]), onclick: () => {
        this.open[key] = !this.open[key];
        toggle.setAttribute("aria-expanded", String(this.open[key]));
        list.classList.toggle("hidden", !this.open[key]);
      } }, h("span", { class: "chevron", "aria-hidden": "true" }), title, h("span", { class: "count", text: String(items.length) }));
      list.classList.toggle("hidden", !this.open[key]);
      return h("section", { class: `contact-section section-${key}` }, toggle, list);
    };
    const person = (name, detail, onclick, cls = "") => h("li", { class: `contact ${cls}` },
      h("button", { type: "button", onclick }, avatar(name), h("span", { class: "contact-text" }, h("span", { class: "contact-name", text: name }), detail ? h("span", { class: "contact-detail", text: detail }) : null)));
    const roles = { owner: "Owner", practitioner: "Practitioner", team_member: "Team member" };
    const team = b.team_members.map((s) => person(s.name, roles[s.role] || "", () => this.openStaff(s)));
    const groups = b.groups.map((g) => person(g.name || "Group chat", "Group", () => this.app.openChat(g.chat_id)));
    const clients = b.clients.map((c) => {
      const family = (c.family_members || []).map((f) => person(f.name, "Family member", () => this.openClient(f, c), "family-member"));
      const self = c.user_id === this.app.session.userId;
      const entry = person(c.name, self ? "You" : (c.can_message ? "" : "Cannot be messaged yet"), () => (self ? null : this.openClient(c)), self ? "is-self" : "");
      if (family.length) entry.append(h("ul", { class: "family" }, family));
      return entry;
    });
    const actions = this.app.isStaff
      ? h("div", { class: "contact-actions" }, h("button", { type: "button", class: "secondary new-group", onclick: () => this.newGroup() }, icon("plus"), "New group chat"))
      : null;
    this.el.replaceChildren(actions || "", section("team", "Team Members", team), section("groups", "Groups", groups), section("clients", "Clients", clients));
  }

  // -- opening chats -------------------------------------------------------------------------

  async openStaff(staff) {
    if (this.app.isStaff) {
      if (staff.chats.length) this.app.openChat(staff.chats[0].chat_id);
      else toast(`You share no chat with ${staff.name} yet.`);
      return;
    }
    await this.direct({ staff_id: staff.staff_id });
  }

  async openClient(client, primary) {
    if (this.app.isStaff) return this.direct({ client_id: client.client_id });
    // A family primary writes about a family member: with which team member?
    const team = this.body.team_members;
    if (!team.length) { toast("There is nobody to write to yet."); return; }
    let staffId = team[0].staff_id;
    if (team.length > 1) {
      const select = h("select", { class: "choose-staff", "aria-label": "Team member" }, team.map((s) => h("option", { value: s.staff_id, text: s.name })));
      staffId = await dialog(`Write about ${client.name}`, h("label", { class: "field" }, "With", select), [["Cancel", null], ["Open chat", () => select.value, "primary"]]);
      if (!staffId) return;
    }
    return this.direct({ staff_id: staffId, client_id: client.client_id }, primary);
  }

  async direct(body) {
    try {
      const answer = await this.app.session.provision("POST", "/chats/direct", body);
      await this.app.list.load();
      this.app.openChat(answer.chat_id);
    } catch (e) {
      if (e.errcode === "ORG.PRACTICEBRIDGE.CHOOSE_CHAT") return this.choose(body, e);
      this.app.fail(e);
    }
  }

  async choose(body, error) {
    const label = (c) => {
      const owner = this.staffName(c.owner_staff_id);
      const shared = c.shared_with_staff_ids.map((s) => this.staffName(s) || "you");
      return (owner ? `${owner}'s chat` : "Your chat") + (shared.length ? `, shared with ${shared.join(", ")}` : "");
    };
    const choice = await dialog("Choose a chat", (close) => h("div", { class: "candidates" },
      h("p", { text: error.message }),
      error.body.candidates.map((c) => h("button", { type: "button", class: "candidate", dataset: { chatId: c.chat_id }, onclick: () => close(c.chat_id) }, label(c)))),
    [["Cancel", null], ["Start a new chat", "new", "secondary"]]);
    if (!choice) return;
    await this.direct(choice === "new" ? { ...body, create_new: true } : { ...body, chat_id: choice });
  }

  // -- groups (staff) ------------------------------------------------------------------------

  async pickPeople(title, action, { withName, exclude = new Set() }) {
    const b = await this.data();
    const name = h("input", { type: "text", class: "group-name", maxlength: "256", placeholder: "Group name", "aria-label": "Group name" });
    const box = (kind, id, label) => h("label", { class: "check" }, h("input", { type: "checkbox", dataset: { kind, id } }), label);
    const clients = [];
    for (const c of b.clients) {
      if (!exclude.has(`client:${c.client_id}`) && c.can_message) clients.push(box("client", c.client_id, c.name));
      for (const f of c.family_members || []) if (!exclude.has(`client:${f.client_id}`)) clients.push(box("client", f.client_id, `${f.name} (family of ${c.name})`));
    }
    const staff = b.team_members.filter((s) => !exclude.has(`staff:${s.staff_id}`)).map((s) => box("staff", s.staff_id, s.name));
    const form = h("div", { class: "people-picker" },
      withName ? h("label", { class: "field" }, "Name", name) : null,
      h("h3", { text: "Clients" }), h("div", { class: "checks" }, clients.length ? clients : h("p", { text: "No clients to add." })),
      h("h3", { text: "Team members" }), h("div", { class: "checks" }, staff.length ? staff : h("p", { text: "No team members to add." })));
    const read = () => {
      const picked = [...form.querySelectorAll("input[type=checkbox]:checked")];
      return {
        name: name.value.trim(),
        client_ids: picked.filter((i) => i.dataset.kind === "client").map((i) => i.dataset.id),
        staff_ids: picked.filter((i) => i.dataset.kind === "staff").map((i) => i.dataset.id),
      };
    };
    return dialog(title, form, [["Cancel", null], [action, read, "primary"]]);
  }

  async newGroup() {
    const body = await this.pickPeople("New group chat", "Create group", { withName: true });
    if (!body) return;
    try {
      const answer = await this.app.session.provision("POST", "/chats/group", body);
      this.body = null;
      await this.app.list.load();
      this.app.openChat(answer.chat_id);
    } catch (e) {
      this.app.fail(e);
    }
  }
}
