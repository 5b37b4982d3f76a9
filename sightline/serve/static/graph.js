// Campaign graph: pan, zoom, find and highlight on the server-drawn SVG (no libraries).
// Links are indexed once; hovering a node toggles classes on its own links and neighbours
// only, so a 1,000-node graph stays responsive.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var svg = document.getElementById("campaign-graph");
  if (!svg) { return; }
  var view = document.getElementById("graph-view");
  var info = document.getElementById("graph-info");
  var vb = svg.getAttribute("viewBox").split(" ").map(Number);
  var home = vb.slice();
  var nodes = {};
  var links = {};
  svg.querySelectorAll("circle.n").forEach(function (c) {
    nodes[c.getAttribute("data-id")] = c;
    links[c.getAttribute("data-id")] = [];
  });
  svg.querySelectorAll("line.e").forEach(function (l) {
    var s = l.getAttribute("data-s"), t = l.getAttribute("data-t");
    if (links[s]) { links[s].push([l, t]); }
    if (links[t]) { links[t].push([l, s]); }
  });
  var lit = [];
  function clear() {
    lit.forEach(function (el) { el.classList.remove("hl"); });
    lit = [];
    svg.classList.remove("focus");
  }
  function light(id) {
    clear();
    var c = nodes[id];
    if (!c) { return; }
    svg.classList.add("focus");
    c.classList.add("hl"); lit.push(c);
    links[id].forEach(function (pair) {
      pair[0].classList.add("hl"); lit.push(pair[0]);
      var n = nodes[pair[1]];
      if (n) { n.classList.add("hl"); lit.push(n); }
    });
    info.textContent = c.getAttribute("data-label") + " · " + c.getAttribute("data-info") + " · " + links[id].length + " link(s)";
  }
  var pinned = null;
  function apply() { svg.setAttribute("viewBox", vb.join(" ")); }
  function zoom(f, cx, cy) {
    var w = vb[2] * f, h = vb[3] * f;
    if (cx === undefined) { cx = vb[0] + vb[2] / 2; cy = vb[1] + vb[3] / 2; }
    vb = [cx - (cx - vb[0]) * f, cy - (cy - vb[1]) * f, w, h];
    apply();
  }
  function point(ev) {
    var r = svg.getBoundingClientRect();
    return [vb[0] + (ev.clientX - r.left) / r.width * vb[2], vb[1] + (ev.clientY - r.top) / r.height * vb[3]];
  }
  svg.addEventListener("mouseover", function (ev) {
    var id = ev.target.getAttribute && ev.target.getAttribute("data-id");
    if (id && !pinned) { light(id); }
  });
  svg.addEventListener("mouseout", function (ev) {
    if (!pinned && ev.target.getAttribute && ev.target.getAttribute("data-id")) { clear(); info.textContent = ""; }
  });
  var drag = null, moved = false;
  svg.addEventListener("mousedown", function (ev) { drag = [ev.clientX, ev.clientY, vb[0], vb[1]]; moved = false; });
  window.addEventListener("mousemove", function (ev) {
    if (!drag) { return; }
    var r = svg.getBoundingClientRect();
    var dx = (ev.clientX - drag[0]) / r.width * vb[2], dy = (ev.clientY - drag[1]) / r.height * vb[3];
    if (Math.abs(ev.clientX - drag[0]) + Math.abs(ev.clientY - drag[1]) > 3) { moved = true; }
    vb[0] = drag[2] - dx; vb[1] = drag[3] - dy; apply();
  });
  window.addEventListener("mouseup", function () { drag = null; });
  svg.addEventListener("click", function (ev) {
    if (moved) { return; }
    var id = ev.target.getAttribute && ev.target.getAttribute("data-id");
    if (id) { pinned = id; light(id); } else { pinned = null; clear(); info.textContent = ""; }
  });
  svg.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var p = point(ev);
    zoom(ev.deltaY > 0 ? 1.2 : 1 / 1.2, p[0], p[1]);
  }, {passive: false});
  document.getElementById("graph-zoom-in").addEventListener("click", function () { zoom(1 / 1.4); });
  document.getElementById("graph-zoom-out").addEventListener("click", function () { zoom(1.4); });
  document.getElementById("graph-reset").addEventListener("click", function () { vb = home.slice(); apply(); pinned = null; clear(); });
  var find = document.getElementById("graph-find");
  find.addEventListener("input", function () {
    var q = find.value.trim().toLowerCase();
    svg.querySelectorAll("circle.found").forEach(function (c) { c.classList.remove("found"); });
    if (!q) { info.textContent = ""; return; }
    var hits = 0, first = null;
    Object.keys(nodes).forEach(function (id) {
      var c = nodes[id];
      var text = (c.getAttribute("data-label") + " " + c.getAttribute("data-info") + " " + (c.getAttribute("data-org") || "")).toLowerCase();
      if (text.indexOf(q) >= 0) { c.classList.add("found"); hits += 1; if (!first) { first = id; } }
    });
    info.textContent = hits + " match(es)";
    if (hits === 1) { pinned = first; light(first); }
  });
  view.classList.add("ready");
});
