// WebboMonitor: the Miners table (server-side search, sort, filters and pages, refreshed in
// place) and the control actions (a confirmation, then the per-miner results of the task).
// Used by the Miners page and by a miner's page (which has only the actions).
"use strict";

(function () {
  const webbo = window.webbo;
  const texts = JSON.parse((document.getElementById("texts") || { content: { textContent: "{}" } }).content.textContent || "{}");
  const lang = document.body.dataset.lang || "ru";
  // Counted texts carry their forms split by "|": Russian one|few|many, English one|other.
  const pluralForm = (n) => {
    n = Math.abs(Math.trunc(n));
    if (lang !== "ru") return n === 1 ? 0 : 1;
    if (n % 10 === 1 && n % 100 !== 11) return 0;
    if (n % 10 >= 2 && n % 10 <= 4 && !(n % 100 >= 12 && n % 100 <= 14)) return 1;
    return 2;
  };
  const t = (key, values) => {
    let text = texts[key] || key;
    if (text.includes("|") && values && "n" in values) {
      const forms = text.split("|");
      text = forms[Math.min(pluralForm(Number(values.n)), forms.length - 1)];
    }
    return text.replace(/\{(\w+)\}/g, (_, name) => (values && name in values ? values[name] : "{" + name + "}"));
  };
  const every = (parseInt(document.body.dataset.liveSeconds, 10) || 5) * 1000;

  async function postJSON(url, data) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": webbo.csrf },
      body: JSON.stringify(data),
    });
    if (response.status === 401) { webbo.toLogin(); throw new Error("login required"); }
    const answer = await response.json().catch(() => ({ error: "HTTP " + response.status }));
    if (!response.ok) throw new Error(answer.error || "HTTP " + response.status);
    return answer;
  }

  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } });
    if (response.status === 401) { webbo.toLogin(); throw new Error("login required"); }
    const answer = await response.json().catch(() => ({ error: "HTTP " + response.status }));
    if (!response.ok) throw new Error(answer.error || "HTTP " + response.status);
    return answer;
  }

  // -- the table ----------------------------------------------------------------------------
  const table = document.getElementById("miners");
  const selected = new Set();
  let matching = false;          // "every miner that matches the filters" is selected
  let total = table ? parseInt(table.dataset.total, 10) || 0 : 0;
  let pageMacs = [];
  let query = new URLSearchParams(location.search);
  let loading = false;
  let again = false;

  function pageBoxes() { return Array.from(document.querySelectorAll("#rows input.pick")); }

  function paintSelection() {
    pageMacs = pageBoxes().map((box) => box.value);
    pageBoxes().forEach((box) => {
      box.checked = matching || selected.has(box.value);
      box.closest("tr").classList.toggle("selected", box.checked);
    });
    const all = document.getElementById("pick-page");
    if (all) {
      const on = pageMacs.filter((m) => matching || selected.has(m)).length;
      all.checked = pageMacs.length > 0 && on === pageMacs.length;
      all.indeterminate = on > 0 && on < pageMacs.length;
    }
    const count = matching ? total : selected.size;
    const bar = document.getElementById("actionbar");
    if (bar) {
      bar.hidden = count === 0;
      document.getElementById("selcount").textContent = t("miners.selected", { n: count });
      const more = document.getElementById("pick-matching");
      const pageAll = pageMacs.length > 0 && pageMacs.every((m) => selected.has(m));
      more.hidden = matching || !pageAll || total <= pageMacs.length;
      more.textContent = t("miners.select_all_matching", { n: total });
    }
  }

  async function load(newQuery) {
    if (!table) return;
    if (newQuery) {
      query = newQuery;
      if (matching) { matching = false; selected.clear(); }
    }
    if (loading) { again = true; return; }
    loading = true;
    try {
      const answer = await getJSON(table.dataset.rowsUrl + "?" + query.toString());
      const focusedSort = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.sort : null;
      const focusedMac = document.activeElement && document.activeElement.classList.contains("pick") ? document.activeElement.value : null;
      document.getElementById("head").innerHTML = answer.head;
      document.getElementById("rows").innerHTML = answer.rows;
      document.getElementById("summary").innerHTML = answer.summary;
      document.getElementById("pager").innerHTML = answer.pager;
      total = answer.total;
      table.dataset.total = String(total);
      const shown = new URLSearchParams(answer.query);
      const url = "/miners" + (shown.toString() ? "?" + shown.toString() : "");
      if (url !== location.pathname + location.search) history.replaceState(null, "", url);
      if (focusedSort) { const el = document.querySelector('#head [data-sort="' + focusedSort + '"]'); if (el) el.focus(); }
      if (focusedMac) { const el = document.querySelector('#rows input.pick[value="' + focusedMac + '"]'); if (el) el.focus(); }
      paintSelection();
    } catch (err) {
      webbo.toast(t("live.failed"));
    } finally {
      loading = false;
      if (again) { again = false; load(); }
    }
  }

  if (table) {
    const form = document.getElementById("filters");
    const fromForm = () => {
      const params = new URLSearchParams();
      new FormData(form).forEach((value, key) => { if (value) params.set(key, value); });
      return params;
    };
    let typing = null;
    form.addEventListener("input", (event) => {
      if (event.target.name !== "q") return;
      clearTimeout(typing);
      typing = setTimeout(() => load(fromForm()), 250);
    });
    form.addEventListener("change", (event) => { if (event.target.tagName === "SELECT") load(fromForm()); });
    form.addEventListener("submit", (event) => { event.preventDefault(); load(fromForm()); });

    // sort headers, pager, state chips, reset: same links as without a script, loaded in place
    document.addEventListener("click", (event) => {
      const link = event.target.closest("a[data-nav]");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
      event.preventDefault();
      const params = new URL(link.href, location.href).searchParams;
      if (link.closest("#filters")) form.reset();
      form.querySelectorAll("input[name], select[name]").forEach((field) => {
        field.value = params.get(field.name) || (field.tagName === "SELECT" && field.name === "size" ? field.options[1].value : "");
      });
      load(params);
    });

    document.addEventListener("change", (event) => {
      const box = event.target;
      if (box.classList && box.classList.contains("pick")) {
        if (matching) { matching = false; pageMacs.forEach((m) => selected.add(m)); }
        if (box.checked) selected.add(box.value); else selected.delete(box.value);
        paintSelection();
      } else if (box.id === "pick-page") {
        if (matching) { matching = false; selected.clear(); }
        pageMacs.forEach((m) => (box.checked ? selected.add(m) : selected.delete(m)));
        paintSelection();
      }
    });
    document.getElementById("pick-matching").addEventListener("click", () => { matching = true; paintSelection(); });
    document.getElementById("pick-clear").addEventListener("click", () => { matching = false; selected.clear(); paintSelection(); });

    setInterval(() => {
      if (!document.hidden && !document.querySelector("dialog[open]")) load();
    }, every);
    paintSelection();
  }

  // -- actions ------------------------------------------------------------------------------
  const dialog = document.getElementById("confirm");
  if (!dialog) return;
  const single = document.querySelector(".actionbar.single");
  let pending = null;

  function target() {
    if (single) return { macs: single.dataset.macs.split(" "), n: 1 };
    if (matching) {
      const filter = {};
      query.forEach((value, key) => { if (["q", "site", "group", "range", "state"].includes(key)) filter[key] = value; });
      return { filter: filter, n: total };
    }
    return { macs: Array.from(selected), n: selected.size };
  }

  function openDialog(action) {
    const chosen = target();
    if (!chosen.n) { webbo.toast(t("act.none")); return; }
    pending = { action: action, chosen: chosen };
    document.getElementById("confirm-text").textContent = t("act.confirm." + action, { n: chosen.n });
    document.getElementById("confirm-work-mode").hidden = action !== "work_mode";
    document.getElementById("confirm-pools").hidden = action !== "pools";
    document.getElementById("confirm-error").hidden = true;
    const ok = document.getElementById("confirm-ok");
    ok.classList.toggle("danger", action === "reboot");
    ok.textContent = t("act." + action).replace(/…$/, "");
    dialog.showModal();
    (action === "work_mode" ? document.getElementById("work-mode") : action === "pools" ? dialog.querySelector(".poolslot input[name=address]") : ok).focus();
  }

  document.querySelectorAll("[data-actions] [data-action]").forEach((button) => {
    button.addEventListener("click", () => openDialog(button.dataset.action));
  });
  document.getElementById("confirm-cancel").addEventListener("click", () => dialog.close());
  dialog.querySelectorAll(".poolslot").forEach((slot) => {
    const keep = slot.querySelector(".keep");
    const paint = () => {
      slot.classList.toggle("kept", keep.checked);
      slot.querySelectorAll(".row input, .row select").forEach((field) => { field.disabled = keep.checked; });
    };
    keep.addEventListener("change", paint);
    paint();
  });

  function requestBody() {
    const body = { action: pending.action };
    if (pending.chosen.filter) body.filter = pending.chosen.filter; else body.macs = pending.chosen.macs;
    if (pending.action === "work_mode") body.mode = document.getElementById("work-mode").value;
    if (pending.action === "pools") {
      body.pools = Array.from(dialog.querySelectorAll(".poolslot")).map((slot) => {
        if (slot.querySelector(".keep").checked) return null;
        const value = (name) => slot.querySelector("[name=" + name + "]").value;
        return { address: value("address"), worker: value("worker"), passwd: value("passwd"), suffix_type: value("suffix_type") };
      });
    }
    return body;
  }

  document.getElementById("confirm-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("confirm-error");
    const ok = document.getElementById("confirm-ok");
    ok.disabled = true;
    try {
      const answer = await postJSON("/ui/miners/actions", requestBody());
      dialog.close();
      follow(answer.task_id, pending.action, answer.devices);
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      ok.disabled = false;
    }
  });

  async function follow(taskId, action, devices) {
    const panel = document.getElementById("results");
    const title = document.getElementById("results-title");
    const bodyEl = document.getElementById("results-body");
    panel.hidden = false;
    title.textContent = t("act.results", { action: t("act." + action).replace(/…$/, "") });
    bodyEl.textContent = t("act.running", { done: 0, n: devices });
    panel.scrollIntoView({ block: "nearest" });
    for (;;) {
      let answer;
      try {
        answer = await getJSON("/ui/tasks/" + encodeURIComponent(taskId));
      } catch (err) {
        bodyEl.textContent = err.message;
        return;
      }
      bodyEl.innerHTML = answer.html;
      panel.dataset.status = answer.status;
      if (answer.status !== "pending") break;
      await new Promise((resolve) => setTimeout(resolve, 600));
    }
    if (table) load(); else webbo.refreshLive();
  }
  document.getElementById("results-close").addEventListener("click", () => { document.getElementById("results").hidden = true; });
})();
