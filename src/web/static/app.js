// Soko storefront: progressive enhancement only. Every page works without this file.
"use strict";

// Infinite scroll: when the "More products" link comes into view, fetch the next page and
// append its cards, keeping the link (and the plain pagination) as the fallback.
(function () {
  var more = document.querySelector(".more a[rel=next]");
  var grid = document.getElementById("cards"); // the listing, not a strip above it
  if (!more || !grid || !("IntersectionObserver" in window) || !window.fetch) return;
  var busy = false;
  var observer = new IntersectionObserver(function (entries) {
    if (!entries[0].isIntersecting || busy) return;
    busy = true;
    fetch(more.href, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        doc.querySelectorAll("#cards > li").forEach(function (li) {
          grid.appendChild(document.importNode(li, true));
        });
        var next = doc.querySelector(".more a[rel=next]");
        if (next) { more.href = next.getAttribute("href"); busy = false; }
        else { observer.disconnect(); more.parentNode.remove(); }
      })
      .catch(function () { observer.disconnect(); }); // the link still works
  }, { rootMargin: "600px" });
  observer.observe(more);
})();

// Placeholders filled after the page: the shared (cached) feed's "Recommended for you" (this
// visitor's strip; without JS the feed shows trending only) and a product page's "Similar
// items" when they were not ready (without JS, a link to them). Each is replaced by the
// section of the same id in what its data-fragment address answers.
(function () {
  if (!window.fetch) return;
  document.querySelectorAll("section[data-fragment]").forEach(function (slot) {
    fetch(slot.getAttribute("data-fragment"), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var found = slot.id && doc.getElementById(slot.id);
        if (found && slot.parentNode) slot.parentNode.replaceChild(document.importNode(found, true), slot);
      })
      .catch(function () {}); // the page stands without it
  });
})();

// Forms marked data-confirm (e.g. deleting a product) ask first; without JS they just submit.
document.addEventListener("submit", function (e) {
  var f = e.target;
  if (f.dataset && f.dataset.confirm && !window.confirm(f.dataset.confirm)) e.preventDefault();
});

// Search-box suggestions: as the visitor types, product names from /search/suggest fill a
// <datalist> under the box (the browser draws it); submitting still goes to /search.
(function () {
  var box = document.querySelector("form.search input[name=q]");
  if (!box || !window.fetch) return;
  var list = document.createElement("datalist");
  list.id = "search-suggestions";
  box.setAttribute("list", list.id);
  box.setAttribute("autocomplete", "off");
  box.parentNode.appendChild(list);
  var timer = null, asked = "";
  box.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var q = box.value.trim();
      if (q.length < 2 || q === asked) return;
      asked = q;
      fetch("/search/suggest?q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (data) {
          if (data.q !== box.value.trim()) return;
          list.textContent = "";
          data.suggestions.forEach(function (s) {
            var o = document.createElement("option");
            o.value = s.name;
            list.appendChild(o);
          });
        })
        .catch(function () {});
    }, 150);
  });
})();
