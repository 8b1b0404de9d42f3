// nanum: progressive enhancement only; every form works without this file.
// - countdowns to the opening ([data-opens]) and the apply button enabled at that moment;
// - copies left kept live ([data-live-remaining], polling the public JSON endpoint);
// - the apply button disabled once pressed (the Idempotency-Key makes a second press
//   harmless anyway);
// - a queued answer ([data-poll]) settling in place, without a reload.
(function () {
  "use strict";

  function left(ms) {
    var s = Math.max(0, Math.ceil(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + "시간 " : "") + (h || m ? m + "분 " : "") + r + "초 남음";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-opens]").forEach(function (el) {
      var ms = Date.parse(el.dataset.opens) - now;
      el.textContent = ms > 0 ? left(ms) : "신청 중";
    });
    var form = document.getElementById("apply");
    var button = document.getElementById("apply-button");
    if (form && button && button.disabled && !form.dataset.sent && Date.parse(form.dataset.opens) <= now) {
      button.disabled = false;
    }
  }

  function poll(id) {
    fetch("/api/v1/events/" + id, { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (e) {
        if (!e) return;
        document.querySelectorAll('[data-live-remaining="' + id + '"]').forEach(function (el) {
          el.textContent = e.remaining;
        });
      })
      .catch(function () {});
  }

  function settle(section) {
    fetch(section.dataset.poll, { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html").getElementById("result");
        if (next && next.dataset.status !== "pending") {
          section.replaceWith(next);
        } else {
          setTimeout(function () { settle(section); }, 700);
        }
      })
      .catch(function () { setTimeout(function () { settle(section); }, 1500); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 250);
    var ids = {};
    document.querySelectorAll("[data-live-remaining]").forEach(function (el) { ids[el.dataset.liveRemaining] = 1; });
    Object.keys(ids).forEach(function (id) { setInterval(function () { poll(id); }, 2000); });
    var form = document.getElementById("apply");
    if (form) {
      form.addEventListener("submit", function (ev) {
        if (form.dataset.sent) { ev.preventDefault(); return; }
        form.dataset.sent = "1";
        // disabled after this tick, so the submit itself still carries the form
        setTimeout(function () { document.getElementById("apply-button").disabled = true; }, 0);
      });
    }
    var pending = document.querySelector("[data-poll]");
    if (pending) settle(pending);
  });
})();
