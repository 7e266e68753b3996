// The tinygrad_cnn live view: draws what the training process sends over /ws (the messages of
// tinygrad_cnn/live/protocol.py) on plain canvases. It sends back only "select", "pause" and
// "resume". Text from the server is put in the page with textContent, never parsed as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const COLORS = { train: "#1f77b4", trainRaw: "rgba(31,119,180,0.25)", val: "#d62728", sample: "#2ca02c" };
  let view = null;        // everything received for the current run
  let socket = null;
  let retryMs = 500;

  function newView(hello) {
    return { hello, status: null, train: [], val: [], sample: [], images: [], predictions: null,
             tiles: [], layersKey: "" };
  }

  // ------------------------------------------------------------ array records
  // {shape, min, max, data}: base64 bytes, b standing for min + b / 255 * (max - min)
  function decode(record) {
    const raw = atob(record.data);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return { shape: record.shape, min: record.min, max: record.max, bytes };
  }

  // an h x w picture in squares of scale x scale pixels: red, green and blue read from the
  // bytes at planes[0], planes[1], planes[2] (one plane given: grey)
  function paint(canvas, bytes, planes, h, w, scale) {
    canvas.width = w * scale;
    canvas.height = h * scale;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(w * scale, h * scale);
    const rgb = planes.length === 3 ? planes : [planes[0], planes[0], planes[0]];
    for (let y = 0; y < h * scale; y++) {
      for (let x = 0; x < w * scale; x++) {
        const src = Math.floor(y / scale) * w + Math.floor(x / scale);
        const p = 4 * (y * w * scale + x);
        for (let c = 0; c < 3; c++) img.data[p + c] = bytes[rgb[c] + src];
        img.data[p + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    canvas.dataset.drawn = "1";
  }

  const paintGrey = (canvas, bytes, offset, h, w, scale) => paint(canvas, bytes, [offset], h, w, scale);
  const paintRGB = (canvas, bytes, h, w, scale) => paint(canvas, bytes, [0, h * w, 2 * h * w], h, w, scale);

  function paintPicture(canvas, record, size) {
    const a = decode(record);
    const [c, h, w] = a.shape;
    const scale = Math.max(1, Math.floor(size / Math.max(h, w)));
    if (c === 3) paintRGB(canvas, a.bytes, h, w, scale);
    else paintGrey(canvas, a.bytes, 0, h, w, scale);
  }

  function className(k) {
    const classes = view.hello.classes;
    return classes && k < classes.length ? classes[k] : String(k);
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmt(v, digits = 3) {
    return v === null || v === undefined ? "-" : Number(v).toPrecision(digits);
  }

  // ------------------------------------------------------------ header and status
  function showHello(hello) {
    const m = hello.model || { name: "?", parameters: 0 };
    $("run").textContent = `${m.name} (${Number(m.parameters).toLocaleString()} parameters) · ` +
      `backend ${hello.backend} · device ${hello.device} · ${hello.epochs} epochs of ${hello.batches} batches`;
  }

  function showStatus(s) {
    view.status = s;
    document.body.dataset.state = s.state;
    const parts = [s.state];
    if (s.epochs) parts.push(`epoch ${s.epoch}/${s.epochs}`);
    if (s.batches) parts.push(`batch ${s.batch}/${s.batches}`);
    parts.push(`${Math.round(s.images_per_s || 0).toLocaleString()} images/s`);
    parts.push(`${s.images_seen.toLocaleString()} images seen`, `${(s.elapsed_s || 0).toFixed(1)} s`);
    $("status").textContent = parts.join(" · ");
    const button = $("pause");
    button.disabled = !(s.state === "training" || s.state === "paused") || !socket;
    button.textContent = s.state === "paused" ? "Resume" : "Pause";
    markSelected(s.selected);
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  // ------------------------------------------------------------ curves
  function runningMean(points, k) {
    const out = [];
    let sum = 0, count = 0;
    const window = [];
    for (const p of points) {
      if (p[1] === null) continue;
      window.push(p[1]); sum += p[1]; count++;
      if (window.length > k) { sum -= window.shift(); count--; }
      out.push([p[0], sum / count]);
    }
    return out;
  }

  function drawChart(canvas, title, series, fixedRange) {
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height, L = 48, R = 12, T = 26, B = 34;
    ctx.clearRect(0, 0, W, H);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
    let xmax = Math.max(1, view.hello.epochs || 0), ymin = Infinity, ymax = -Infinity;
    for (const s of series) for (const p of s.points) {
      xmax = Math.max(xmax, p[0]);
      if (p[1] !== null) { ymin = Math.min(ymin, p[1]); ymax = Math.max(ymax, p[1]); }
    }
    if (fixedRange) [ymin, ymax] = fixedRange;
    if (!isFinite(ymin)) { ymin = 0; ymax = 1; }
    if (ymax - ymin < 1e-9) { ymax = ymin + 1; }
    ymin = Math.min(0, ymin);
    const X = (x) => L + (x / xmax) * (W - L - R);
    const Y = (y) => T + (1 - (y - ymin) / (ymax - ymin)) * (H - T - B);
    ctx.strokeStyle = "#ccc"; ctx.fillStyle = "#333"; ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = ymin + (i / 4) * (ymax - ymin);
      ctx.beginPath(); ctx.moveTo(L, Y(y)); ctx.lineTo(W - R, Y(y)); ctx.stroke();
      ctx.textAlign = "right"; ctx.fillText(fmt(y, 2), L - 4, Y(y) + 4);
    }
    const step = Math.max(1, Math.ceil(xmax / 10));
    for (let x = 0; x <= xmax + 1e-9; x += step) {
      ctx.textAlign = "center"; ctx.fillText(String(x), X(x), H - B + 14);
    }
    ctx.fillText("epoch", (L + W - R) / 2, H - 6);
    ctx.textAlign = "left"; ctx.font = "bold 12px sans-serif"; ctx.fillText(title, L, 16);
    let legendX = W - R;
    ctx.font = "11px sans-serif"; ctx.textAlign = "right";
    for (const s of series.slice().reverse()) {
      if (!s.label) continue;
      ctx.fillStyle = s.color; ctx.fillText(s.label, legendX, 16);
      legendX -= ctx.measureText(s.label).width + 12;
    }
    for (const s of series) {
      const pts = s.points.filter((p) => p[1] !== null);
      const stride = Math.max(1, Math.floor(pts.length / 2000));   // at most ~2000 segments drawn
      ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = s.width || 1.5;
      ctx.setLineDash(s.dash || []);
      ctx.beginPath();
      for (let i = 0; i < pts.length; i += stride) {
        const [x, y] = [X(pts[i][0]), Y(pts[i][1])];
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      }
      ctx.stroke();
      ctx.setLineDash([]);
      if (s.markers) for (const p of pts) { ctx.beginPath(); ctx.arc(X(p[0]), Y(p[1]), 3, 0, 7); ctx.fill(); }
    }
    canvas.dataset.points = String(view.train.length);
  }

  function drawCurves() {
    const k = Math.max(1, Math.min(50, Math.round((view.hello.batches || 20) / 4)));
    for (const [metric, index, canvas, range] of [["loss", 1, $("loss-chart"), null],
                                                   ["accuracy", 2, $("accuracy-chart"), [0, 1]]]) {
      const pick = (points) => points.map((p) => [p[0], p[index]]);
      const train = pick(view.train);
      drawChart(canvas, metric, [
        { points: train, color: COLORS.trainRaw, width: 1 },
        { points: runningMean(train, k), color: COLORS.train, label: "training", width: 2 },
        { points: pick(view.sample), color: COLORS.sample, label: "shown test images", dash: [4, 3] },
        { points: pick(view.val), color: COLORS.val, label: "validation", markers: true, width: 2 },
      ], range);
    }
  }

  // ------------------------------------------------------------ test images
  function showImages(images) {
    view.images = images;
    const grid = $("grid");
    grid.replaceChildren();
    view.tiles = images.map((image, position) => {
      const tile = el("figure", "tile");
      const canvas = el("canvas", "picture");
      paintPicture(canvas, image.pixels, 56);
      const caption = el("figcaption", "", image.label === null ? "" : `label ${className(image.label)}`);
      tile.append(canvas, caption);
      tile.title = `test image ${image.index}: click to show its activations`;
      tile.addEventListener("click", () => {
        markSelected(position);
        send({ type: "select", image: position });
      });
      grid.append(tile);
      return { tile, caption };
    });
    markSelected(view.status ? view.status.selected : 0);
  }

  function markSelected(position) {
    view.tiles.forEach((t, i) => t.tile.classList.toggle("selected", i === position));
  }

  function showPredictions(p) {
    view.predictions = p;
    p.probability.forEach((prob, i) => {
      const t = view.tiles[i];
      if (!t) return;
      const image = view.images[i];
      let text;
      if (p.predicted) {
        text = `${className(p.predicted[i])} ${Math.round(100 * prob)}%`;
        if (p.correct[i] === false) text += ` (is ${className(image.label)})`;
      } else {
        text = prob === null ? "" : `pixels right ${Math.round(100 * prob)}%`;
      }
      t.caption.textContent = text;
      t.tile.classList.toggle("wrong", p.correct[i] === false);
      t.tile.classList.toggle("right", p.correct[i] === true);
    });
    const right = p.correct.filter((c) => c === true).length;
    const judged = p.correct.filter((c) => c !== null).length;
    const summary = judged ? `${right} of ${judged} right` : "";
    $("predictions-summary").textContent = `At epoch ${fmt(p.x, 3)}: ${summary}` +
      `${p.loss === null ? "" : `, loss ${fmt(p.loss)}`}. Wrong predictions are framed in red; ` +
      "click an image to see its activations below.";
  }

  // ------------------------------------------------------------ filters
  function showFilters(f) {
    const canvas = $("filters");
    const [k, c, kh, kw] = f.shape;
    paintPicture(canvas, f.grid, Math.max(120, Math.min(480, 14 * kh * Math.ceil(Math.sqrt(k)))));
    $("filters-note").textContent = `${k} kernels of ${c}×${kh}×${kw} in layer ${f.layer}, each scaled ` +
      "to its own range (colour for three input channels, else grey).";
  }

  // ------------------------------------------------------------ activations
  function layerRow(layer) {
    const row = el("div", "layer");
    const info = el("div", "info");
    info.append(el("div", "name", `${layer.type} ${layer.name}`), el("div", "desc", layer.description),
      el("div", "shape"), el("div", "range"));
    const maps = el("div", "maps");
    row.append(info, maps);
    return row;
  }

  // class probabilities: one bar per class, with its name and value
  function paintBars(canvas, labels, probs) {
    const rowH = 14, width = 280, left = 100;
    canvas.width = width; canvas.height = rowH * probs.length + 4;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.font = "11px sans-serif";
    probs.forEach((p, i) => {
      const y = 2 + i * rowH;
      ctx.fillStyle = "#4a7ebb"; ctx.fillRect(left, y + 2, p * (width - left - 40), rowH - 4);
      ctx.fillStyle = "#222"; ctx.textAlign = "right"; ctx.fillText(labels[i], left - 4, y + 11);
      ctx.textAlign = "left"; ctx.fillText(`${Math.round(100 * p)}%`, width - 36, y + 11);
    });
    canvas.dataset.drawn = "1";
  }

  // the units of a dense layer: one grey box each, as ConvNetJS draws them
  function paintUnits(canvas, bytes, count) {
    const box = 10, perRow = Math.min(count, 32);
    canvas.width = perRow * box; canvas.height = Math.ceil(count / perRow) * box;
    const ctx = canvas.getContext("2d");
    for (let i = 0; i < count; i++) {
      const v = bytes[i];
      ctx.fillStyle = `rgb(${v},${v},${v})`;
      ctx.fillRect((i % perRow) * box, Math.floor(i / perRow) * box, box - 1, box - 1);
    }
    canvas.dataset.drawn = "1";
  }

  function showActivations(message) {
    const network = $("network");
    const key = message.layers.map((l) => `${l.name}:${l.maps.shape.join("x")}`).join("|");
    if (key !== view.layersKey) {   // a new structure: build the rows once, then only repaint
      network.replaceChildren(...message.layers.map(layerRow));
      view.layersKey = key;
    }
    message.layers.forEach((layer, i) => {
      const row = network.children[i];
      const a = decode(layer.maps);
      const shape = a.shape;
      const shown = shape[0];
      // (C, H, W) maps, (C, L) signals drawn as 1 x L strips, (F,) units
      const [h, w] = shape.length === 3 ? shape.slice(1) : shape.length === 2 ? [1, shape[1]] : [1, 1];
      const spatial = h * w > 1;
      const total = spatial ? layer.shape[0] : layer.shape.reduce((n, d) => n * d, 1);
      row.querySelector(".shape").textContent = `output ${layer.shape.join("×")}` +
        (shown < total ? ` (first ${shown} shown)` : "") +
        (layer.parameters ? ` · ${layer.parameters.toLocaleString()} parameters` : "");
      row.querySelector(".range").textContent = `max ${fmt(a.max)} · min ${fmt(a.min)}`;
      const maps = row.querySelector(".maps");
      const colour = layer.type === "Input" && shape.length === 3 && shape[0] === 3;   // an RGB input
      const wanted = spatial && !colour ? shown : 1;
      const scale = Math.max(1, Math.min(10, Math.floor(56 / Math.max(h, w))));   // maps ~56 pixels wide
      while (maps.children.length > wanted) maps.lastChild.remove();
      while (maps.children.length < wanted) maps.append(el("canvas", "map"));
      if (colour) {
        paintRGB(maps.children[0], a.bytes, h, w, scale);
      } else if (spatial) {
        for (let c = 0; c < shown; c++) paintGrey(maps.children[c], a.bytes, c * h * w, h, w, scale);
      } else if (layer.type === "Softmax") {
        const probs = Array.from(a.bytes, (b) => a.min + (b / 255) * (a.max - a.min));
        paintBars(maps.children[0], probs.map((_, k) => className(k)), probs);
      } else {
        paintUnits(maps.children[0], a.bytes, shown);
      }
    });
    network.dataset.image = String(message.image);
    network.dataset.step = String(message.step);
    const image = view.images[message.image];
    $("network-note").textContent = `Test image ${image ? image.index : message.image}` +
      `${image && image.label !== null ? ` (label ${className(image.label)})` : ""}, after step ${message.step}. ` +
      "Each layer's maps share one grey scale, from its smallest activation (black) to its largest (white).";
  }

  // ------------------------------------------------------------ messages
  function handle(message) {
    if (message.type === "hello") {
      if (!view || view.hello.run !== message.run) {
        view = newView(message);
        $("grid").replaceChildren(); $("network").replaceChildren();
      }
      view.hello = message;
      showHello(message);
      return;
    }
    if (!view) return;
    if (message.type === "status") showStatus(message);
    else if (message.type === "metrics") {
      for (const name of ["train", "val", "sample"]) view[name].push(...(message[name] || []));
      drawCurves();
    } else if (message.type === "images") showImages(message.images);
    else if (message.type === "predictions") showPredictions(message);
    else if (message.type === "activations") showActivations(message);
    else if (message.type === "filters") showFilters(message);
  }

  function setConnection(text, live) {
    const badge = $("connection");
    badge.textContent = text;
    badge.classList.toggle("live", live);
    if (!live) $("pause").disabled = true;
  }

  function connect() {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    const ws = new WebSocket(url);
    ws.addEventListener("open", () => { socket = ws; retryMs = 500; setConnection("live", true); });
    ws.addEventListener("message", (event) => {
      try { handle(JSON.parse(event.data)); } catch (error) { console.error("live view:", error); }
    });
    ws.addEventListener("close", () => {
      socket = null;
      const finished = view && view.status && view.status.state === "finished";
      setConnection(finished ? "training finished: the server has stopped; this is the final state"
                             : "disconnected: showing the last state received", false);
      document.body.dataset.connection = "closed";
      retryMs = Math.min(10000, retryMs * 2);
      setTimeout(connect, retryMs);
    });
  }

  $("pause").addEventListener("click", () => {
    if (!view || !view.status) return;
    send({ type: view.status.state === "paused" ? "resume" : "pause" });
  });
  connect();
})();
