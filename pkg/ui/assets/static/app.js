// idpbuilder registry UI: the only script the pages load. Everything works
// without it; it adds copy buttons, the theme toggle, the delete confirmation
// and submit-on-change for the sort and platform pickers.
"use strict";

(function () {
  const live = () => document.getElementById("live");

  function announce(msg) {
    const el = live();
    if (el) { el.textContent = ""; el.textContent = msg; }
  }

  // Theme: the server renders html[data-theme] from this cookie; without it the
  // page follows the system.
  function currentTheme() {
    const t = document.documentElement.dataset.theme;
    if (t === "light" || t === "dark") return t;
    return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  function setupTheme() {
    const btn = document.getElementById("theme-toggle");
    if (!btn) return;
    btn.hidden = false;
    const label = () => {
      const next = currentTheme() === "dark" ? "light" : "dark";
      btn.setAttribute("aria-label", "Switch to the " + next + " theme");
      btn.title = "Switch to the " + next + " theme";
    };
    label();
    btn.addEventListener("click", () => {
      const next = currentTheme() === "dark" ? "light" : "dark";
      document.documentElement.dataset.theme = next;
      const secure = document.documentElement.dataset.secure === "true" ? "; Secure" : "";
      document.cookie = "idpbuilder_theme=" + next + "; Path=/ui/; Max-Age=31536000; SameSite=Strict" + secure;
      label();
      announce("Switched to the " + next + " theme");
    });
  }

  // Copy buttons: the Clipboard API where the page is a secure context
  // (https, localhost), else a selection and execCommand.
  function fallbackCopy(text) {
    const ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.className = "visually-hidden";
    document.body.appendChild(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    ta.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }
  function setupCopy() {
    document.addEventListener("click", (ev) => {
      const btn = ev.target.closest("button[data-copy]");
      if (!btn) return;
      const text = btn.dataset.copy;
      const done = navigator.clipboard && window.isSecureContext
        ? navigator.clipboard.writeText(text).catch(() => fallbackCopy(text))
        : fallbackCopy(text);
      done.then(() => {
        const old = btn.textContent;
        btn.classList.add("copied");
        btn.textContent = "Copied";
        announce("Copied: " + text);
        setTimeout(() => { btn.classList.remove("copied"); btn.textContent = old; }, 1500);
      }, () => announce("Copying failed: select the text and copy it yourself"));
    });
  }

  // Deleting a repository: the button waits for its name to be typed (the
  // server checks the name too).
  function setupConfirm() {
    document.querySelectorAll("form[data-confirm-form]").forEach((form) => {
      const input = form.querySelector("input[data-confirm-value]");
      const btn = form.querySelector("button[type=submit]");
      if (!input || !btn) return;
      const sync = () => { btn.disabled = input.value !== input.dataset.confirmValue; };
      input.addEventListener("input", sync);
      sync();
    });
  }

  // Sort and platform pickers submit when changed with the mouse. From the
  // keyboard, arrows only move the choice (a page must not change under
  // someone reading the options): Enter, or the button that then shows,
  // submits it.
  function setupAutosubmit() {
    document.querySelectorAll("select[data-autosubmit]").forEach((sel) => {
      const btn = sel.form.querySelector(".js-hide");
      let keyed = false;
      sel.addEventListener("keydown", (ev) => {
        keyed = true;
        if (btn) btn.hidden = false;
        if (ev.key === "Enter") {
          ev.preventDefault();
          sel.form.submit();
        }
      });
      sel.addEventListener("pointerdown", () => { keyed = false; });
      sel.addEventListener("change", () => { if (!keyed) sel.form.submit(); });
      if (btn) btn.hidden = true;
    });
  }

  function init() {
    setupTheme();
    setupCopy();
    setupConfirm();
    setupAutosubmit();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
