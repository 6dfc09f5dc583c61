/* The Messenger's embed script: one <script> on a portal page, then
 *
 *   const messenger = PracticeMessenger.mount(element, {
 *     session: {homeserver, user_id, device_id, access_token},  // from POST .../sessions
 *     layout: "page" | "tab",       // the full Messages page, or the tab docked bottom-right
 *     bridge: "https://bridge.example.com",  // optional: where this script came from
 *     onUnread: (count) => {}, onSignedOut: () => {},
 *   });
 *
 * It puts the Messenger in a frame on the bridge's origin (its styles and scripts stay apart
 * from the portal's) and hands the session over with postMessage to that origin alone: the
 * access token never goes into a URL. messenger.unread is the unread count (while the person
 * keeps in-portal alerts on); messenger.expand(), .minimise(), .dock() and .destroy() drive it.
 */
(function () {
  "use strict";
  var PROTOCOL = "practice-messenger";
  var script = document.currentScript;
  var defaultBridge = script ? new URL(script.src, location.href).origin : location.origin;

  var SIZES = {
    docked: { width: "380px", height: "min(600px, calc(100vh - 32px))", right: "16px", bottom: "16px" },
    minimised: { width: "300px", height: "48px", right: "16px", bottom: "16px" },
    expanded: { width: "100vw", height: "100vh", right: "0", bottom: "0" },
  };

  function mount(element, options) {
    if (!element || !options || !options.session) throw new Error("PracticeMessenger.mount(element, {session, layout})");
    var bridge = new URL(options.bridge || defaultBridge).origin;
    var layout = options.layout === "tab" ? "tab" : "page";
    var state = layout === "tab" ? options.state || "docked" : null;
    var baseTitle = document.title;
    var frame = document.createElement("iframe");
    var box = document.createElement("div");
    var api = { unread: 0, layout: layout, state: state, element: box };
    var session = options.session;

    frame.title = "Messages";
    frame.setAttribute("allow", "microphone; camera; clipboard-write");
    frame.setAttribute("referrerpolicy", "no-referrer");
    frame.style.cssText = "border:0;width:100%;height:100%;display:block;background:transparent";
    box.className = "practice-messenger practice-messenger-" + layout;
    box.appendChild(frame);

    function place() {
      if (layout === "page") {
        box.style.cssText = "width:100%;height:100%;min-height:480px;position:relative";
        return;
      }
      var phone = window.innerWidth < 600;
      var size = SIZES[state];
      if (phone && state !== "minimised") size = SIZES.expanded;
      if (phone && state === "minimised") size = { width: "calc(100vw - 16px)", height: "48px", right: "8px", bottom: "8px" };
      box.style.cssText = "position:fixed;z-index:2147483000;border-radius:" + (size === SIZES.expanded ? "0" : "12px") +
        ";overflow:hidden;box-shadow:0 8px 32px rgba(15,23,42,.28);background:#fff;width:" + size.width +
        ";height:" + size.height + ";right:" + size.right + ";bottom:" + size.bottom;
      box.dataset.state = state;
    }

    function setState(next, tell) {
      if (layout !== "tab") return;
      state = next;
      api.state = next;
      place();
      if (tell) frame.contentWindow.postMessage({ source: PROTOCOL, type: "layout", state: next }, bridge);
      if (options.onLayout) options.onLayout(next);
    }

    function onMessage(event) {
      if (event.source !== frame.contentWindow || event.origin !== bridge) return;
      var data = event.data || {};
      if (data.source !== PROTOCOL) return;
      if (data.type === "ready" && session) {
        frame.contentWindow.postMessage({ source: PROTOCOL, type: "session", session: session, layout: layout, state: state }, bridge);
        session = null; // handed over once; the page keeps no copy
      } else if (data.type === "unread") {
        api.unread = data.count;
        document.title = data.alerts && data.count ? "(" + data.count + ") " + baseTitle : baseTitle;
        box.dataset.unread = String(data.count);
        if (options.onUnread) options.onUnread(data.count);
      } else if (data.type === "layout") {
        setState(data.state, false);
      } else if (data.type === "signed-out") {
        api.unread = 0;
        document.title = baseTitle;
        if (options.onSignedOut) options.onSignedOut();
      } else if (data.type === "event" && options.onEvent) {
        options.onEvent(data);
      }
    }

    window.addEventListener("message", onMessage);
    window.addEventListener("resize", place);
    place();
    frame.src = bridge + "/messenger/app.html";
    element.appendChild(box);

    api.expand = function () { setState("expanded", true); };
    api.minimise = function () { setState("minimised", true); };
    api.dock = function () { setState("docked", true); };
    api.destroy = function () {
      window.removeEventListener("message", onMessage);
      window.removeEventListener("resize", place);
      document.title = baseTitle;
      box.remove();
    };
    return api;
  }

  window.PracticeMessenger = { mount: mount };
})();
