// The live view: draws what pdmer-stream pushes over its WebSocket (the messages are listed in
// pdmer/view/server.py). Plain canvas drawing: nothing to fetch from the internet.
"use strict";

const HISTORY_S = 60; // seconds in the line charts (the server keeps as much for a page that connects later)
const TRAIL_S = 20; // seconds of the fading trail on the plane
const RETRY_MS = 1000; // reconnect period while the stream is away
const EASE = 0.25; // per animation frame: how far the drawn point moves towards the newest value

const view = {
  points: [], // {t, v, a}; v and a are null in silence
  hops: [], // {t, level_db, compute_ms, silent}
  everConnected: false,
  received: 0,
  drawn: null, // the point as drawn (eased towards the newest)
  dirty: true,
};

const $ = (id) => document.getElementById(id);

function banner(kind, text) {
  const element = $("banner");
  element.className = `banner ${kind}`;
  element.textContent = text;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/live`);
  socket.onopen = () => {
    view.everConnected = true;
    banner("live", "");
  };
  socket.onmessage = (event) => receive(JSON.parse(event.data));
  socket.onclose = () => {
    if (view.everConnected) {
      banner("gone", "The stream is gone: pdmer-stream stopped. This page reconnects by itself when it runs " +
        "again with --view on this address.");
      $("state").textContent = "gone";
    } else {
      banner("connecting", `Cannot reach pdmer-stream at ${location.host}. Start it with ` +
        `pdmer-stream --view ${location.host}; this page keeps trying.`);
    }
    setTimeout(connect, RETRY_MS);
  };
}

function trim(list) {
  const newest = list.length ? list[list.length - 1].t : 0;
  while (list.length && list[0].t < newest - HISTORY_S) list.shift();
}

function receive(message) {
  view.received += 1;
  view.dirty = true;
  if (message.type === "hello") { // a new connection, perhaps to a restarted stream: start over from its history
    view.points = message.points;
    view.hops = message.hops;
    view.drawn = null;
    $("profile").textContent = message.profile;
    $("model").textContent = message.model;
    $("source").textContent = message.source;
    $("osc").textContent = message.osc.join(", ");
    $("state").textContent = "connected";
    const hop = view.hops[view.hops.length - 1];
    if (hop) showHop(hop);
  } else if (message.type === "point") {
    const last = view.points[view.points.length - 1];
    if (last && message.t <= last.t) return; // already in the hello's history
    view.points.push(message);
    trim(view.points);
  } else if (message.type === "hop") {
    view.hops.push(message);
    trim(view.hops);
    showHop(message);
  } else if (message.type === "status") {
    $("state").textContent = message.state;
  }
}

function showHop(hop) {
  $("time").textContent = `${hop.t.toFixed(1)} s`;
  const level = hop.level_db === null ? -80 : Math.max(-80, hop.level_db);
  $("level-meter").value = level;
  $("level").textContent = `${level.toFixed(1)} dBFS${hop.silent ? " (silence)" : ""}`;
  $("compute").textContent = hop.compute_ms === null ? "-" : `${hop.compute_ms.toFixed(1)} ms`;
}

// -- drawing ---------------------------------------------------------------------------------------------------------
function context(canvas) { // crisp on high-density screens: the backing store in device pixels, drawing in CSS pixels
  const ratio = window.devicePixelRatio || 1;
  if (!canvas.dataset.cssWidth) {
    canvas.dataset.cssWidth = canvas.width;
    canvas.dataset.cssHeight = canvas.height;
    canvas.width = canvas.width * ratio;
    canvas.height = canvas.height * ratio;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  const width = Number(canvas.dataset.cssWidth), height = Number(canvas.dataset.cssHeight);
  ctx.clearRect(0, 0, width, height);
  return [ctx, width, height];
}

function css(name) { return getComputedStyle(document.body).getPropertyValue(name).trim(); }

function drawPlane() {
  const canvas = $("va-plane");
  const [ctx, width, height] = context(canvas);
  const margin = 44, size = Math.min(width, height) - 2 * margin;
  const x = (v) => margin + (v + 1) / 2 * size, y = (a) => margin + (1 - a) / 2 * size;
  ctx.font = "13px system-ui, sans-serif";
  ctx.strokeStyle = css("--grid");
  ctx.fillStyle = "#6b7080";
  for (const tick of [-1, -0.5, 0, 0.5, 1]) {
    ctx.lineWidth = tick === 0 ? 1.5 : 0.7;
    ctx.beginPath(); ctx.moveTo(x(tick), y(-1)); ctx.lineTo(x(tick), y(1)); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(x(-1), y(tick)); ctx.lineTo(x(1), y(tick)); ctx.stroke();
    ctx.textAlign = "center"; ctx.fillText(String(tick), x(tick), y(-1) + 16);
    ctx.textAlign = "right"; ctx.fillText(String(tick), x(-1) - 6, y(tick) + 4);
  }
  ctx.fillStyle = css("--ink");
  ctx.textAlign = "center";
  ctx.fillText("valence (-1 .. 1)", x(0), y(-1) + 34);
  ctx.save(); ctx.translate(x(-1) - 32, y(0)); ctx.rotate(-Math.PI / 2); ctx.fillText("arousal (-1 .. 1)", 0, 0);
  ctx.restore();
  ctx.fillStyle = "#a0a4b0";
  for (const [v, a, word] of [[0.5, 0.9, "excited, happy"], [-0.5, 0.9, "tense, angry"],
    [-0.5, -0.9, "sad, gloomy"], [0.5, -0.9, "calm, content"]]) ctx.fillText(word, x(v), y(a));

  const values = view.points.filter((p) => p.v !== null);
  const newest = values[values.length - 1];
  if (!newest) { canvas.dataset.points = "0"; return; }
  for (let i = 1; i < values.length; i++) { // the trail fades with age
    const age = newest.t - values[i].t;
    if (age > TRAIL_S || values[i].t - values[i - 1].t > 1.5) continue; // no line across a silence
    ctx.strokeStyle = `rgba(29, 35, 48, ${0.6 * (1 - age / TRAIL_S)})`;
    ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(x(values[i - 1].v), y(values[i - 1].a)); ctx.lineTo(x(values[i].v), y(values[i].a));
    ctx.stroke();
  }
  const target = { v: newest.v, a: newest.a };
  view.drawn = view.drawn ? { v: view.drawn.v + EASE * (target.v - view.drawn.v),
    a: view.drawn.a + EASE * (target.a - view.drawn.a) } : target;
  ctx.fillStyle = "#e67e22";
  ctx.beginPath(); ctx.arc(x(view.drawn.v), y(view.drawn.a), 9, 0, 2 * Math.PI); ctx.fill();
  // What the page shows, for people reading the DOM and for the browser test.
  canvas.dataset.valence = newest.v.toFixed(4);
  canvas.dataset.arousal = newest.a.toFixed(4);
  canvas.dataset.x = x(view.drawn.v).toFixed(1);
  canvas.dataset.y = y(view.drawn.a).toFixed(1);
  canvas.dataset.points = String(values.length);
  $("values").textContent = `${newest.v >= 0 ? "+" : ""}${newest.v.toFixed(2)} / ` +
    `${newest.a >= 0 ? "+" : ""}${newest.a.toFixed(2)}`;
  if (Math.abs(view.drawn.v - target.v) > 1e-3 || Math.abs(view.drawn.a - target.a) > 1e-3) view.dirty = true;
}

function drawChart(id, key, colour) {
  const canvas = $(id);
  const [ctx, width, height] = context(canvas);
  const left = 40, right = 24, top = 8, bottom = 24;
  const newest = view.points.length ? view.points[view.points.length - 1].t : 0;
  const end = Math.max(HISTORY_S, newest), start = end - HISTORY_S;
  const x = (t) => left + (t - start) / HISTORY_S * (width - left - right);
  const y = (value) => top + (1 - value) / 2 * (height - top - bottom);
  ctx.font = "12px system-ui, sans-serif";
  ctx.strokeStyle = css("--grid");
  ctx.fillStyle = "#6b7080";
  ctx.lineWidth = 0.7;
  ctx.textAlign = "right";
  for (const tick of [-1, 0, 1]) {
    ctx.beginPath(); ctx.moveTo(left, y(tick)); ctx.lineTo(width - right, y(tick)); ctx.stroke();
    ctx.fillText(String(tick), left - 6, y(tick) + 4);
  }
  ctx.textAlign = "center";
  for (let t = Math.ceil(start / 10) * 10; t <= end; t += 10) {
    ctx.beginPath(); ctx.moveTo(x(t), top); ctx.lineTo(x(t), height - bottom); ctx.stroke();
    ctx.fillText(`${t} s`, x(t), height - 6);
  }
  ctx.strokeStyle = colour;
  ctx.lineWidth = 2;
  ctx.beginPath();
  let drawing = false, count = 0, previous = null;
  for (const point of view.points) {
    const value = point[key];
    if (value === null || (previous !== null && point.t - previous > 1.5)) drawing = false; // a gap for silence
    if (value === null) { previous = null; continue; }
    if (drawing) ctx.lineTo(x(point.t), y(value)); else ctx.moveTo(x(point.t), y(value));
    drawing = true; previous = point.t; count += 1;
  }
  ctx.stroke();
  canvas.dataset.points = String(count);
}

function frame() {
  if (view.dirty) {
    view.dirty = false;
    drawPlane();
    drawChart("valence-chart", "v", css("--valence"));
    drawChart("arousal-chart", "a", css("--arousal"));
  }
  requestAnimationFrame(frame);
}

connect();
requestAnimationFrame(frame);
