// WebboMonitor web UI: what every page needs. Our own small script, no libraries.
// - live parts: elements with data-live="URL" are re-fetched (server-rendered HTML) every few
//   seconds while the tab is visible; a lost session sends the browser to the login page;
// - menus (<details class="menu">) close on Escape and on a click elsewhere;
// - forms with data-confirm ask first; buttons with data-busy show progress on submit;
// - copy buttons (data-copy="#input") copy a field's text.
"use strict";

(function () {
  document.documentElement.classList.add("js");
  const body = document.body;
  const every = (parseInt(body.dataset.liveSeconds, 10) || 5) * 1000;

  window.webbo = window.webbo || {};
  const webbo = window.webbo;
  webbo.csrf = body.dataset.csrf || "";

  webbo.toLogin = function () {
    const here = location.pathname + location.search;
    location.href = "/login?ended=1&next=" + encodeURIComponent(here);
  };

  webbo.toast = function (text) {
    const toast = document.getElementById("toast");
    if (!toast) return;
    toast.textContent = text;
    toast.classList.add("show");
    clearTimeout(webbo._toastTimer);
    webbo._toastTimer = setTimeout(() => toast.classList.remove("show"), 2500);
  };

  webbo.fetchText = async function (url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } });
    if (response.status === 401) { webbo.toLogin(); throw new Error("login required"); }
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.text();
  };

  // -- live parts ---------------------------------------------------------------------------
  async function refresh(el) {
    if (el.dataset.busy === "1") return;
    el.dataset.busy = "1";
    try {
      const html = await webbo.fetchText(el.dataset.live);
      const focused = document.activeElement && el.contains(document.activeElement) ? document.activeElement.id : null;
      el.innerHTML = html;
      el.removeAttribute("aria-busy");
      if (focused) { const again = document.getElementById(focused); if (again) again.focus(); }
      el.dispatchEvent(new CustomEvent("live:updated", { bubbles: true }));
    } catch (err) {
      el.setAttribute("aria-busy", "true");
    } finally {
      el.dataset.busy = "0";
    }
  }
  webbo.refreshLive = function () {
    document.querySelectorAll("[data-live]").forEach(refresh);
  };
  // an element may ask for a slower pace (data-every="15": the rack map of a big farm)
  setInterval(() => {
    if (document.hidden || document.querySelector("dialog[open]")) return;
    const now = Date.now();
    document.querySelectorAll("[data-live]").forEach((el) => {
      const pace = (parseInt(el.dataset.every, 10) || 0) * 1000;
      if (pace && now - (parseInt(el.dataset.last, 10) || 0) < pace) return;
      el.dataset.last = String(now);
      refresh(el);
    });
  }, every);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) webbo.refreshLive(); });

  // -- menus --------------------------------------------------------------------------------
  document.addEventListener("click", (event) => {
    document.querySelectorAll("details.menu[open]").forEach((menu) => {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.menu[open]").forEach((menu) => {
      menu.removeAttribute("open");
      menu.querySelector("summary").focus();
    });
  });

  // -- forms --------------------------------------------------------------------------------
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    const button = event.submitter;
    if (button && button.dataset.busy) {
      // disable after the browser has taken the button's name/value into the submission
      setTimeout(() => { button.disabled = true; button.textContent = button.dataset.busy; }, 0);
    }
  });

  // the rack map's colour switch: refresh in place and keep it in the address
  const mapForm = document.getElementById("mapform");
  if (mapForm) {
    mapForm.addEventListener("change", () => {
      const form = new FormData(mapForm);
      const query = new URLSearchParams({color: form.get("color")});
      if (form.get("site")) query.set("site", form.get("site"));  // a hub's site filter
      const map = document.getElementById("map");
      map.dataset.live = "/ui/map/tiles?" + query;
      history.replaceState(null, "", "/map?" + query);
      refresh(map);
    });
  }

  // -- copy buttons -------------------------------------------------------------------------
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const field = document.querySelector(button.dataset.copy);
    if (!field) return;
    let copied = false;
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(field.value); copied = true; } catch (err) { copied = false; }
    }
    if (!copied) {  // plain http on the farm network: the Clipboard API is not offered there
      field.focus();
      field.select();
      try { copied = document.execCommand("copy"); } catch (err) { copied = false; }
    }
    if (copied) {
      button.dataset.done = "1";
      webbo.toast(button.dataset.copied || "OK");
    }
  });
})();
