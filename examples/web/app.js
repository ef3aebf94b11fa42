// The original state service's example consumer: a dashboard that saves its layout
// through libstate's HTTP API (POST /v1/get and /v1/set, values base64 as Go
// encodes []byte) and restores it on reload. The token lives in sessionStorage.
// It follows changes live through Server-Sent Events (GET /v1/watch): a layout
// changed in another tab or by another program appears here without a reload.
"use strict";

const DEFAULT_LAYOUT = { cols: 3, theme: "light", widgets: ["Temperature", "Humidity", "Power", "Doors"] };
const KEY = "dashboard/layout";
const $ = (id) => document.getElementById(id);
let layout = structuredClone(DEFAULT_LAYOUT);
// Values this page saved whose own change events have not come back yet: the echo
// of our own save is not news (and may be older than what the page shows now).
const ownSaves = [];
let events = null;

function b64encode(text) {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

function b64decode(b64) {
  return new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
}

async function call(method, body) {
  const resp = await fetch(`/v1/${method}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${sessionStorage.getItem("token")}` },
    body: JSON.stringify(body),
  });
  const data = await resp.json();
  if (!resp.ok) throw new Error(`${data.kind}: ${data.error}`);
  return data;
}

function render() {
  $("cols").value = String(layout.cols);
  $("theme").value = layout.theme;
  document.body.classList.toggle("dark", layout.theme === "dark");
  const list = $("widgets");
  list.style.setProperty("--cols", layout.cols);
  list.replaceChildren(
    ...layout.widgets.map((name, i) => {
      const li = document.createElement("li");
      li.dataset.widget = name;
      li.textContent = name;
      const up = document.createElement("button");
      up.textContent = "↑";
      up.title = `Move ${name} up`;
      up.disabled = i === 0;
      up.addEventListener("click", () => {
        [layout.widgets[i - 1], layout.widgets[i]] = [layout.widgets[i], layout.widgets[i - 1]];
        save();
      });
      li.append(up);
      return li;
    }),
  );
}

async function save() {
  render();
  const value = b64encode(JSON.stringify(layout));
  ownSaves.push(value);
  try {
    await call("set", { key: KEY, value });
    $("saved").textContent = "Saved.";
  } catch (e) {
    $("saved").textContent = `Not saved: ${e.message}`;
  }
}

async function load() {
  const got = await call("get", { key: KEY });
  layout = got.found ? { ...DEFAULT_LAYOUT, ...JSON.parse(b64decode(got.value)) } : structuredClone(DEFAULT_LAYOUT);
  render();
}

function applyChange(change) {
  if (change.kind === "lagged") return load(); // changes were missed: read again
  if (change.key !== KEY) return;
  if (change.kind === "set") {
    const mine = ownSaves.indexOf(change.value);
    if (mine >= 0) {
      ownSaves.splice(0, mine + 1);
      return;
    }
    layout = { ...DEFAULT_LAYOUT, ...JSON.parse(b64decode(change.value)) };
  } else {
    layout = structuredClone(DEFAULT_LAYOUT);
  }
  render();
}

// EventSource cannot send an Authorization header, so the token goes in the URL
// (the server accepts that on /v1/watch only).
function follow(token) {
  events?.close();
  const url = `/v1/watch?prefix=${encodeURIComponent(KEY)}&token=${encodeURIComponent(token)}`;
  events = new EventSource(url);
  let opened = false;
  events.onopen = () => {
    // After a reconnect, changes made while we were away were not sent: reload.
    if (opened) load();
    opened = true;
    $("live").textContent = "Live.";
    document.body.dataset.live = "open";
  };
  events.onerror = () => {
    $("live").textContent = "Reconnecting…";
    document.body.dataset.live = "closed";
  };
  events.onmessage = (ev) => {
    try {
      applyChange(JSON.parse(ev.data));
    } catch (e) {
      $("live").textContent = `Bad change event: ${e.message}`;
    }
  };
}

async function signIn(token) {
  sessionStorage.setItem("token", token);
  try {
    await load();
    follow(token);
    $("status").textContent = "Signed in.";
    $("board").hidden = false;
    $("signout").hidden = false;
  } catch (e) {
    sessionStorage.removeItem("token");
    $("status").textContent = `Sign-in failed: ${e.message}`;
    $("board").hidden = true;
  }
}

$("signin").addEventListener("submit", (ev) => {
  ev.preventDefault();
  signIn($("token").value.trim());
});
$("signout").addEventListener("click", () => {
  events?.close();
  sessionStorage.removeItem("token");
  location.reload();
});
$("cols").addEventListener("change", () => { layout.cols = Number($("cols").value); save(); });
$("theme").addEventListener("change", () => { layout.theme = $("theme").value; save(); });

if (sessionStorage.getItem("token")) signIn(sessionStorage.getItem("token"));
