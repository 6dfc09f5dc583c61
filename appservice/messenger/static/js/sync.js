// One /sync loop for live updates. The first call asks for no rooms at all (a practitioner may
// be in thousands): it only fetches the position to follow from; the chat list comes from the
// bridge. Later calls bring new events for every room: the open chat takes its own, and the
// list refreshes when anything that changes it arrives.
// https://spec.matrix.org/v1.11/client-server-api/#get_matrixclientv3sync

import { SignedOut } from "./api.js";

const FIRST = { room: { rooms: [] }, presence: { not_types: ["*"] }, account_data: { not_types: ["*"] } };
const LIVE = {
  room: {
    timeline: { limit: 30, lazy_load_members: true },
    state: { lazy_load_members: true, types: ["org.practicebridge.policy", "org.practicebridge.chat", "m.room.pinned_events", "m.room.power_levels"] },
    ephemeral: { types: ["m.receipt"] },
    account_data: { types: ["m.tag", "m.marked_unread", "com.famedly.marked_unread"] },
  },
  presence: { not_types: ["*"] },
  account_data: { types: ["org.practicebridge.preferences"] },
};
const LIST_EVENTS = new Set(["m.room.message", "m.room.redaction", "m.room.member"]);

export class SyncLoop {
  constructor(app) {
    this.app = app;
    this.running = false;
    this.controller = null;
  }

  start() {
    this.running = true;
    this.run();
  }

  stop() {
    this.running = false;
    if (this.controller) this.controller.abort();
  }

  async run() {
    let since = null;
    let failures = 0;
    while (this.running) {
      this.controller = new AbortController();
      try {
        const body = await this.app.session.sync(since, since ? LIVE : FIRST, since ? 25000 : 0, this.controller.signal);
        if (since) this.handle(body);
        since = body.next_batch;
        failures = 0;
        this.app.connection(null);
      } catch (e) {
        if (e instanceof SignedOut || !this.running || this.app.session.signedOut) return;
        if (e.status === 400 || e.status === 403) return this.app.fail(e);
        failures += 1;
        this.app.connection("Reconnecting…");
        await new Promise((r) => setTimeout(r, Math.min(30000, 1000 * 2 ** Math.min(failures, 5))));
      }
    }
  }

  handle(body) {
    const rooms = body.rooms || {};
    let refresh = false;
    for (const [roomId, room] of Object.entries(rooms.join || {})) {
      const events = (room.timeline && room.timeline.events) || [];
      const receipts = ((room.ephemeral && room.ephemeral.events) || []).filter((e) => e.type === "m.receipt");
      if (events.some((e) => LIST_EVENTS.has(e.type)) || (room.account_data && room.account_data.events.length) || receipts.length) refresh = true;
      const view = this.app.chatView;
      if (view && view.chatId === roomId) view.live(events, receipts, room.timeline && room.timeline.limited);
    }
    for (const roomId of Object.keys(rooms.leave || {})) {
      refresh = true;
      if (this.app.chatView && this.app.chatView.chatId === roomId) this.app.chatView.gone();
    }
    const prefs = ((body.account_data && body.account_data.events) || []).find((e) => e.type === "org.practicebridge.preferences");
    if (prefs && this.app.settings) Object.assign(this.app.settings, prefs.content);
    if (refresh) this.app.list.refreshSoon();
  }
}
