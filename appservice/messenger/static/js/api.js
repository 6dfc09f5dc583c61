// The two APIs the Messenger speaks: Synapse's client-server API and the bridge's provisioning
// API, both with the session's access token in the Authorization header (never in a URL).

export class ApiError extends Error {
  constructor(status, body) {
    const sentence = body && typeof body.error === "string" ? body.error : null;
    super(sentence || `The request failed (${status}).`);
    this.status = status;
    this.errcode = body && body.errcode;
    this.body = body || {};
  }
}

export class SignedOut extends Error {}

const q = encodeURIComponent;

export class Session {
  constructor({ homeserver, user_id, device_id, access_token }, bridgeBase, onSignedOut) {
    this.homeserver = homeserver.replace(/\/+$/, "");
    this.userId = user_id;
    this.deviceId = device_id;
    this.token = access_token;
    this.bridge = bridgeBase;
    this.signedOut = false;
    this.onSignedOut = onSignedOut;
    this.txn = 0;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.token}`, ...extra };
  }

  async request(base, method, path, body, { signal } = {}) {
    if (this.signedOut) throw new SignedOut();
    const init = { method, headers: this.headers(), signal, cache: "no-store" };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(base + path, init);
    return this.answer(response);
  }

  async answer(response) {
    let data = null;
    const text = await response.text();
    try { data = text ? JSON.parse(text) : {}; } catch { data = { error: null }; }
    if (response.status === 401) this.end();
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  end() {
    if (this.signedOut) return;
    this.signedOut = true;
    this.token = null;
    this.onSignedOut();
  }

  matrix(method, path, body, opts) {
    return this.request(this.homeserver + "/_matrix/client", method, path, body, opts);
  }

  provision(method, path, body) {
    return this.request(this.bridge, method, path, body);
  }

  txnId() {
    this.txn += 1;
    return `pbm${Date.now().toString(36)}${this.txn}${Math.random().toString(36).slice(2, 8)}`;
  }

  // -- Matrix -----------------------------------------------------------------------------

  // https://spec.matrix.org/v1.11/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid
  send(roomId, type, content, txn = this.txnId()) {
    return this.matrix("PUT", `/v3/rooms/${q(roomId)}/send/${q(type)}/${q(txn)}`, content);
  }

  // https://spec.matrix.org/v1.11/client-server-api/#put_matrixclientv3roomsroomidredacteventidtxnid
  redact(roomId, eventId, reason) {
    const body = reason ? { reason } : {};
    return this.matrix("PUT", `/v3/rooms/${q(roomId)}/redact/${q(eventId)}/${q(this.txnId())}`, body);
  }

  async state(roomId, type, key = "") {
    try {
      return await this.matrix("GET", `/v3/rooms/${q(roomId)}/state/${q(type)}/${q(key)}`);
    } catch (e) {
      if (e.status === 404) return null;
      throw e;
    }
  }

  putState(roomId, type, content, key = "") {
    return this.matrix("PUT", `/v3/rooms/${q(roomId)}/state/${q(type)}/${q(key)}`, content);
  }

  // https://spec.matrix.org/v1.11/client-server-api/#get_matrixclientv3roomsroomidmessages
  messages(roomId, from, limit = 30, filter = { lazy_load_members: true }) {
    const params = new URLSearchParams({ dir: "b", limit: String(limit), filter: JSON.stringify(filter) });
    if (from) params.set("from", from);
    return this.matrix("GET", `/v3/rooms/${q(roomId)}/messages?${params}`);
  }

  event(roomId, eventId) {
    return this.matrix("GET", `/v3/rooms/${q(roomId)}/event/${q(eventId)}`);
  }

  receipt(roomId, eventId, type) {
    return this.matrix("POST", `/v3/rooms/${q(roomId)}/receipt/${type}/${q(eventId)}`, {});
  }

  sync(since, filter, timeout, signal) {
    const params = new URLSearchParams({ filter: JSON.stringify(filter), timeout: String(timeout) });
    if (since) params.set("since", since);
    return this.matrix("GET", `/v3/sync?${params}`, undefined, { signal });
  }

  // https://spec.matrix.org/v1.11/client-server-api/#post_matrixmediav3upload
  // XMLHttpRequest, not fetch: only it reports upload progress.
  upload(file, name, onProgress) {
    return new Promise((resolve, reject) => {
      if (this.signedOut) { reject(new SignedOut()); return; }
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${this.homeserver}/_matrix/media/v3/upload?filename=${q(name)}`);
      xhr.setRequestHeader("Authorization", `Bearer ${this.token}`);
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
      xhr.onload = () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
        if (xhr.status === 401) this.end();
        if (xhr.status >= 200 && xhr.status < 300) resolve(body.content_uri);
        else reject(new ApiError(xhr.status, body));
      };
      xhr.onerror = () => reject(new ApiError(0, { error: "The upload failed: check the connection and try again." }));
      xhr.send(file);
    });
  }

  // Authenticated media: the token goes in the header, the picture into a blob: URL.
  // https://spec.matrix.org/v1.11/client-server-api/#get_matrixclientv1mediadownloadservernamemediaid
  async media(mxc, thumbnail) {
    const match = /^mxc:\/\/([^/]+)\/([^/?#]+)$/.exec(mxc || "");
    if (!match) throw new ApiError(400, { error: "This attachment has no valid address." });
    const path = thumbnail
      ? `/v1/media/thumbnail/${q(match[1])}/${q(match[2])}?width=${thumbnail}&height=${thumbnail}&method=scale`
      : `/v1/media/download/${q(match[1])}/${q(match[2])}`;
    if (this.signedOut) throw new SignedOut();
    const response = await fetch(this.homeserver + "/_matrix/client" + path, { headers: this.headers() });
    if (!response.ok) {
      if (response.status === 401) this.end();
      let body = {};
      try { body = await response.json(); } catch { /* not JSON */ }
      throw new ApiError(response.status, body);
    }
    return response.blob();
  }

  // -- the bridge ---------------------------------------------------------------------------

  async download(path) {
    if (this.signedOut) throw new SignedOut();
    const response = await fetch(this.bridge + path, { headers: this.headers() });
    if (!response.ok) return this.answer(response);
    const disposition = response.headers.get("Content-Disposition") || "";
    const star = /filename\*=utf-8''([^;]+)/i.exec(disposition);
    const plain = /filename="([^"]+)"/i.exec(disposition);
    const name = star ? decodeURIComponent(star[1]) : plain ? plain[1] : "export";
    return { blob: await response.blob(), name };
  }
}

export { q as encode };
