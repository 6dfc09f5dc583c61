// The demo page of `make run DEMO=1`: turns the code after # into a fresh session for that demo
// person (POST /messenger/demo/session) and mounts the Messenger with it, as a portal would.

const code = location.hash.slice(1);
const main = document.getElementById("portal-main");
const error = document.getElementById("demo-error");
let messenger = null;

async function session() {
  const response = await fetch("demo/session", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ code }) });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || "The demo session could not be made.");
  return body;
}

async function show(layout) {
  error.hidden = true;
  try {
    const s = await session();
    document.getElementById("who").textContent = s.name;
    if (messenger) messenger.destroy();
    main.replaceChildren();
    main.classList.toggle("tab-mode", layout === "tab");
    if (layout === "tab") main.textContent = "The portal's own page is here; the Messenger tab is docked at the bottom right.";
    messenger = window.PracticeMessenger.mount(main, { session: s, layout });
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
  }
}

document.getElementById("as-page").addEventListener("click", () => show("page"));
document.getElementById("as-tab").addEventListener("click", () => show("tab"));
if (!code) {
  error.textContent = "Open this page with a link that `make run DEMO=1` printed.";
  error.hidden = false;
} else {
  show("page");
}
