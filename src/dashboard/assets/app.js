// consort dashboard: polls /api/snapshot every second; the explorer reads the chain through
// /api/rpc, which only accepts the server's fixed list of read methods.
"use strict";

const PALETTE = ["#4f6bed", "#0f9d8a", "#c2477a", "#d9822b", "#7a5af8", "#2f8fd8", "#8a9a2b", "#b0563c"];
const $ = (id) => document.getElementById(id);
let snap = null;
let lastOk = 0;

function esc(v) {
  return String(v == null ? "" : v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
const hexNum = (h) => (h == null ? null : Number(BigInt(h)));
function ago(ts) {
  if (!ts) return "";
  const s = Math.max(0, Math.round(Date.now() / 1000 - ts));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s ago";
  return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m ago";
}
function ether(hex) {
  if (hex == null) return "–";
  const wei = BigInt(hex);
  const unit = 10n ** 18n;
  const whole = wei / unit;
  let frac = (wei % unit).toString().padStart(18, "0").replace(/0+$/, "");
  if (frac.length > 6) frac = frac.slice(0, 6) + "…";
  return whole.toLocaleString("en-US") + (frac ? "." + frac : "") + " ETH";
}
function short(h, n = 10) {
  if (!h) return "";
  return h.length > 2 * n ? h.slice(0, n) + "…" + h.slice(-6) : h;
}
function memberColour(member) {
  const members = [];
  for (const n of (snap && snap.nodes) || []) if (!members.includes(n.member)) members.push(n.member);
  const i = members.indexOf(member);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

async function rpc(method, params) {
  const r = await fetch("/api/rpc", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ method, params }),
  });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
  return body.result;
}

// ---- who is who (addresses only: the snapshot holds no key or password)
function whoIs(addr) {
  if (!addr || !snap) return null;
  const a = addr.toLowerCase();
  const acct = (snap.accounts || []).find((x) => x.address === a);
  if (acct) return { text: acct.member + "/" + acct.name, kind: "account of " + acct.member };
  const s = (snap.signers || []).find((x) => x.address === a);
  if (s && s.node) return { text: s.node, kind: "signer of " + s.member };
  return null;
}
function addrLink(addr) {
  if (!addr) return '<span class="muted">–</span>';
  const w = whoIs(addr);
  return '<a class="mono" href="#/address/' + esc(addr) + '">' + esc(short(addr, 8)) + "</a>" +
    (w ? ' <span class="muted">(' + esc(w.text) + ")</span>" : "");
}

// ---- overview
function renderBanner(s) {
  const b = $("banner");
  if (s.error) {
    b.className = "banner bad";
    b.innerHTML = "<strong>Cannot read the network.</strong> " + esc(s.error);
    return;
  }
  const h = s.health;
  // A failed sample keeps the last picture, but never as if it were live.
  const stale = s.stale
    ? "<p><strong>Data stale since " + esc(new Date(s.stale.since * 1000).toLocaleTimeString()) + ":</strong> " + esc(s.stale.error) + "</p>"
    : "";
  if (s.stale) {
    b.className = "banner bad";
    b.innerHTML = stale;
  } else if (h.healthy) {
    b.className = "banner ok";
    b.innerHTML = "<strong>Healthy.</strong> " + s.nodes.length + " node(s) peered, head #" + h.head +
      ", signers as the topology says.";
  } else if (h.stopped) {
    b.className = "banner warn";
    b.innerHTML = "<strong>Stopped.</strong> Every node is stopped; <code>consort start</code> starts them again on their data.";
  } else if (h.crashed) {
    b.className = "banner bad";
    b.innerHTML = "<strong>Crashed.</strong> Every node is down, and not by <code>consort stop</code> (they exited or were killed); <code>consort start</code> or <code>consort apply</code> starts them again on their data.";
  } else {
    b.className = "banner bad";
    // The halt is the headline already.
    const reasons = h.reasons.filter((r) => !(h.halted && r.startsWith("chain halted")));
    const items = reasons.slice(0, 12).map((r) => "<li>" + esc(r) + "</li>").join("");
    const more = reasons.length > 12 ? "<li>… and " + (reasons.length - 12) + " more</li>" : "";
    b.innerHTML = "<strong>" + (h.halted ? "Chain halted." : "Unhealthy.") + "</strong> " +
      (h.halted ? esc(h.halted.online + " of " + h.halted.signers + " signers online; Clique needs " + h.halted.needed + ".") : "") +
      "<ul>" + items + more + "</ul>";
  }
}

function renderTiles(s) {
  $("t-head").textContent = "#" + s.head.toLocaleString("en-US");
  $("t-head-age").textContent = s.head_time ? "sealed " + ago(s.head_time) : "";
  const p = s.production || [];
  if (p.length > 1) {
    const avg = (p[p.length - 1].timestamp - p[0].timestamp) / (p.length - 1);
    $("t-interval").textContent = avg.toFixed(1) + " s";
    $("t-interval-sub").textContent = "average of last " + (p.length - 1) + " · target " + s.network.period + " s";
  } else {
    $("t-interval").textContent = "–";
    $("t-interval-sub").textContent = "target " + s.network.period + " s";
  }
  const running = s.nodes.filter((n) => n.running).length;
  $("t-nodes").textContent = running + " / " + s.nodes.length;
  const bad = s.nodes.filter((n) => n.problems.length).length;
  $("t-nodes-sub").textContent = bad ? bad + " with problems" : "all healthy";
  const active = s.signers.filter((x) => x.active);
  const online = active.filter((x) => s.nodes.some((n) => n.name === x.node && n.running)).length;
  $("t-signers").textContent = String(active.length);
  $("t-signers-sub").textContent = online + " online · Clique needs " + (Math.floor(active.length / 2) + 1);
  let pending = 0;
  for (const n of s.nodes) if (n.metrics && n.metrics.txpool_pending != null) pending = Math.max(pending, n.metrics.txpool_pending);
  $("t-pending").textContent = String(pending);
}

function renderSigners(s) {
  const list = s.signers;
  $("window").textContent = "blocks sealed, #" + s.window.from + "–#" + s.window.to;
  if (!list.length) {
    $("signers").innerHTML = '<div class="empty">No signer known yet.</div>';
  } else {
    const max = Math.max(1, ...list.map((x) => x.sealed));
    const rowH = 34, w = 460, labelW = 190, barW = w - labelW - 50;
    let svg = '<svg viewBox="0 0 ' + w + " " + (list.length * rowH + 4) + '" role="img" aria-label="blocks sealed per signer">';
    list.forEach((x, i) => {
      const y = i * rowH + 4;
      const col = x.member ? memberColour(x.member) : "#94a3b8";
      const len = Math.max(2, (barW * x.sealed) / max);
      svg += '<text x="0" y="' + (y + 13) + '" font-size="12.5" fill="#1f2a37" font-weight="600">' + esc(x.node || short(x.address, 6)) + "</text>";
      svg += '<text x="0" y="' + (y + 27) + '" font-size="11" fill="#6b7785">' + esc((x.member || "unknown") + " · " + short(x.address, 6)) + (x.active ? "" : " · not a signer now") + "</text>";
      svg += '<rect x="' + labelW + '" y="' + (y + 5) + '" width="' + barW + '" height="16" rx="4" fill="#eef1f5"/>';
      svg += '<rect x="' + labelW + '" y="' + (y + 5) + '" width="' + len.toFixed(1) + '" height="16" rx="4" fill="' + col + '"/>';
      svg += '<text x="' + (labelW + barW + 8) + '" y="' + (y + 18) + '" font-size="12.5" fill="#1f2a37">' + x.sealed + "</text>";
    });
    svg += "</svg>";
    $("signers").innerHTML = '<div class="chart">' + svg + "</div>";
  }
  const props = s.proposals || [];
  $("proposals").innerHTML = props.length
    ? props.map((p) => '<div class="proposal">Pending proposal: <b>' + esc(p.proposer) + "</b> votes to " + (p.authorize ? "add " : "remove ") + '<span class="mono">' + esc(p.address) + "</span></div>").join("")
    : '<div class="empty">No pending proposals.</div>';
}

function renderProduction(s) {
  const p = s.production || [];
  $("prod-hint").textContent = "seconds between blocks, last " + Math.max(0, p.length - 1);
  if (p.length < 2) {
    $("production").innerHTML = '<div class="empty">Waiting for blocks…</div>';
    return;
  }
  const gaps = [];
  for (let i = 1; i < p.length; i++) gaps.push({ n: p[i].number, d: p[i].timestamp - p[i - 1].timestamp, txs: p[i].txs });
  const w = 460, h = 170, left = 30, bottom = 22, top = 8;
  const period = s.network.period || 1;
  const max = Math.max(period * 2, ...gaps.map((g) => g.d));
  const bw = (w - left) / gaps.length;
  const y = (v) => top + (h - top - bottom) * (1 - v / max);
  let svg = '<svg viewBox="0 0 ' + w + " " + h + '" role="img" aria-label="block intervals">';
  for (const t of [0, period, Math.round(max)]) {
    svg += '<line x1="' + left + '" x2="' + w + '" y1="' + y(t).toFixed(1) + '" y2="' + y(t).toFixed(1) + '" stroke="#e4e8ef"/>';
    svg += '<text x="' + (left - 6) + '" y="' + (y(t) + 4).toFixed(1) + '" font-size="10.5" fill="#6b7785" text-anchor="end">' + t + "s</text>";
  }
  gaps.forEach((g, i) => {
    const x = left + i * bw + 1;
    const col = g.d > period * 2 ? "#d89b16" : g.txs > 0 ? "#0f9d8a" : "#4f86c6";
    svg += '<rect x="' + x.toFixed(1) + '" y="' + y(g.d).toFixed(1) + '" width="' + Math.max(1, bw - 2).toFixed(1) + '" height="' + (y(0) - y(g.d)).toFixed(1) + '" rx="1.5" fill="' + col + '"><title>#' + g.n + ": " + g.d + "s, " + g.txs + " tx</title></rect>";
  });
  svg += '<line x1="' + left + '" x2="' + w + '" y1="' + y(period).toFixed(1) + '" y2="' + y(period).toFixed(1) + '" stroke="#1f2a37" stroke-dasharray="4 4" stroke-opacity=".45"/>';
  svg += '<text x="' + left + '" y="' + (h - 6) + '" font-size="10.5" fill="#6b7785">#' + gaps[0].n + "</text>";
  svg += '<text x="' + w + '" y="' + (h - 6) + '" font-size="10.5" fill="#6b7785" text-anchor="end">#' + gaps[gaps.length - 1].n + "</text>";
  const lx = left + (w - left) / 2 - 95;
  svg += '<rect x="' + lx + '" y="' + (h - 14) + '" width="9" height="9" rx="2" fill="#0f9d8a"/><text x="' + (lx + 13) + '" y="' + (h - 6) + '" font-size="10.5" fill="#6b7785">with transactions</text>';
  svg += '<rect x="' + (lx + 112) + '" y="' + (h - 14) + '" width="9" height="9" rx="2" fill="#d89b16"/><text x="' + (lx + 125) + '" y="' + (h - 6) + '" font-size="10.5" fill="#6b7785">late</text>';
  svg += "</svg>";
  $("production").innerHTML = '<div class="chart">' + svg + "</div>";
}

function renderNodes(s) {
  let t = "<thead><tr><th>Node</th><th>Role</th><th>State</th><th class=num>Peers</th><th class=num>Head</th><th class=num>Lag</th>" +
    "<th class=num>Txpool</th><th class=num>Block import</th><th>Endpoint</th></tr></thead><tbody>";
  for (const n of s.nodes) {
    const state = !n.running ? '<span class="pill bad">stopped</span>'
      : n.problems.length ? '<span class="pill warn">degraded</span>' : '<span class="pill ok">running</span>';
    const m = n.metrics || {};
    const pool = m.txpool_pending == null ? "–" : m.txpool_pending + (m.txpool_queued ? " + " + m.txpool_queued + " queued" : "");
    const imp = m.block_ms == null ? "–" : (m.block_ms < 10 ? m.block_ms.toFixed(2) : m.block_ms.toFixed(0)) + " ms";
    t += '<tr><td><span class="dot" data-member="' + esc(n.member) + '"></span><b>' + esc(n.name) + '</b><div class="muted">' + esc(n.member) + "</div>" +
      (n.problems.length ? '<ul class="problems">' + n.problems.map((p) => "<li>" + esc(p) + "</li>").join("") + "</ul>" : "") + "</td>" +
      "<td>" + esc(n.role) + (n.signer ? ' <span class="star" title="Clique signer">★ signer</span>' : "") + "</td>" +
      "<td>" + state + "</td>" +
      '<td class="num">' + n.peers + "</td>" +
      '<td class="num"><a href="#/block/' + n.block + '">#' + n.block + "</a></td>" +
      // One block behind is a block in flight between two probes (as `consort status` counts).
      '<td class="num">' + (n.lag > 1 ? '<span class="pill warn">' + n.lag + "</span>" : String(n.lag)) + "</td>" +
      '<td class="num">' + esc(pool) + "</td>" +
      '<td class="num">' + esc(imp) + "</td>" +
      '<td class="mono">' + (n.rpc_url ? esc(n.rpc_url) : '<span class="muted">IPC only</span>') + "</td></tr>";
  }
  $("nodes").innerHTML = t + "</tbody>";
  // Colours through the CSSOM (the page's policy allows no inline style attributes).
  for (const d of $("nodes").querySelectorAll(".dot")) d.style.background = memberColour(d.dataset.member);
}

function renderLatest(s) {
  let t = "<thead><tr><th>Block</th><th>Hash</th><th>Sealed by</th><th class=num>Txs</th><th class=num>Gas used</th><th>Age</th></tr></thead><tbody>";
  for (const b of s.latest) {
    t += '<tr class="click" data-href="#/block/' + b.number + '"><td><a href="#/block/' + b.number + '">#' + b.number + '</a></td><td class="muted mono">' + esc(short(b.hash, 8)) + "</td>" +
      "<td>" + (b.signer_node ? esc(b.signer_node) + ' <span class="muted">' + esc(b.signer_member) + "</span>" : '<span class="mono">' + esc(short(b.signer || "", 6)) + "</span>") + "</td>" +
      '<td class="num">' + b.txs + '</td><td class="num">' + b.gas_used.toLocaleString("en-US") + "</td><td>" + esc(ago(b.timestamp)) + "</td></tr>";
  }
  $("latest").innerHTML = t + "</tbody>";
  for (const r of $("latest").querySelectorAll("tr.click")) r.onclick = () => { location.hash = r.dataset.href; };
}

function renderAccounts(s) {
  const list = s.accounts || [];
  $("accounts").innerHTML = list.length
    ? "<tbody>" + list.map((a) => '<tr><td><span class="dot" data-member="' + esc(a.member) + '"></span>' + esc(a.member) + "/" + esc(a.name) + '</td><td><a class="mono" href="#/address/' + esc(a.address) + '">' + esc(short(a.address, 8)) + "</a></td></tr>").join("") + "</tbody>"
    : '<tbody><tr><td class="muted">No funded accounts in the topology.</td></tr></tbody>';
  for (const d of $("accounts").querySelectorAll(".dot")) d.style.background = memberColour(d.dataset.member);
  const n = s.network;
  $("chain").innerHTML = [
    ["Chain id", String(n.chain_id)],
    ["Genesis", n.genesis_hash ? '<a class="mono" href="#/block/0">' + esc(short(n.genesis_hash, 10)) + "</a>" : "–"],
    ["Clique", "period " + n.period + " s · epoch " + n.epoch.toLocaleString("en-US") + " blocks"],
  ].map(([k, v]) => "<dt>" + esc(k) + "</dt><dd>" + v + "</dd>").join("");
}

function renderOverview(s) {
  renderBanner(s);
  if (s.error) return;
  $("net-name").textContent = s.network.name;
  $("net-meta").textContent = "chain " + s.network.chain_id + " · Clique " + s.network.period + "s";
  document.title = s.network.name + " · consort";
  renderTiles(s);
  $("graph").innerHTML = s.graph_svg;
  renderSigners(s);
  renderAccounts(s);
  renderNodes(s);
  renderProduction(s);
  renderLatest(s);
}

async function poll() {
  try {
    const r = await fetch("/api/snapshot", { cache: "no-store" });
    if (r.ok) {
      snap = await r.json();
      lastOk = Date.now();
      renderOverview(snap);
      refreshPendingTx();
    }
  } catch (e) {
    /* the server went away: say so below */
  }
  const stale = Date.now() - lastOk;
  $("updated").textContent = lastOk === 0 ? "connecting…"
    : stale > 4000 ? "no update for " + Math.round(stale / 1000) + "s"
    : "updated " + new Date(lastOk).toLocaleTimeString() + (snap && snap.sample_ms != null ? " · read in " + snap.sample_ms + " ms" : "");
  setTimeout(poll, 1000);
}

// ---- explorer
function kv(rows) {
  return '<dl class="kv">' + rows.map(([k, v]) => "<dt>" + esc(k) + "</dt><dd>" + v + "</dd>").join("") + "</dl>";
}
function title(kind, text) {
  return '<div class="detail-title"><span class="kind">' + esc(kind) + "</span><h2>" + text + "</h2></div>";
}

async function showBlock(id) {
  const byHash = /^0x[0-9a-fA-F]{64}$/.test(id);
  const b = byHash ? await rpc("eth_getBlockByHash", [id, true]) : await rpc("eth_getBlockByNumber", ["0x" + BigInt(id).toString(16), true]);
  if (!b) return notFound("No block " + id + " on this chain (yet).");
  let signer = null;
  try { signer = await rpc("clique_getSigner", [b.hash]); } catch (e) { /* genesis has none */ }
  const n = hexNum(b.number), ts = hexNum(b.timestamp);
  const gasUsed = hexNum(b.gasUsed), gasLimit = hexNum(b.gasLimit);
  let html = title("Block", "#" + n.toLocaleString("en-US")) + kv([
    ["Hash", '<span class="mono">' + esc(b.hash) + "</span>"],
    ["Parent", n > 0 ? '<a class="mono" href="#/block/' + esc(b.parentHash) + '">' + esc(b.parentHash) + "</a>" : "–"],
    ["Sealed by", n > 0 && signer ? addrLink(signer) : '<span class="muted">genesis</span>'],
    ["Time", esc(new Date(ts * 1000).toLocaleString()) + ' <span class="muted">(' + esc(ago(ts)) + ")</span>"],
    ["Gas used", gasUsed.toLocaleString("en-US") + ' <span class="muted">of ' + gasLimit.toLocaleString("en-US") + " (" + (100 * gasUsed / gasLimit).toFixed(2) + "%)</span>"],
    ["Base fee", b.baseFeePerGas ? hexNum(b.baseFeePerGas).toLocaleString("en-US") + " wei" : "–"],
    ["Transactions", String(b.transactions.length)],
  ]);
  html += '<div class="nav">' + (n > 0 ? '<a href="#/block/' + (n - 1) + '">← #' + (n - 1) + "</a> · " : "") + '<a href="#/block/' + (n + 1) + '">#' + (n + 1) + " →</a></div>";
  if (b.transactions.length) {
    html += "<h3>Transactions</h3><div class=scroll><table class=table><thead><tr><th>Hash</th><th>From</th><th>To</th><th class=num>Value</th></tr></thead><tbody>";
    for (const t of b.transactions) {
      html += '<tr><td><a class="mono" href="#/tx/' + esc(t.hash) + '">' + esc(short(t.hash)) + "</a></td><td>" + addrLink(t.from) + "</td><td>" + (t.to ? addrLink(t.to) : '<span class="muted">contract creation</span>') + '</td><td class="num">' + esc(ether(t.value)) + "</td></tr>";
    }
    html += "</tbody></table></div>";
  }
  return html;
}

// The pending transaction on screen: its page follows the snapshots (sealed, or why not).
let pendingTx = null;
let refreshingTx = false;
function refreshPendingTx() {
  const hash = pendingTx;
  if (!hash || refreshingTx || location.hash.toLowerCase() !== "#/tx/" + hash) return;
  refreshingTx = true;
  showTx(hash)
    .then((html) => { if (location.hash.toLowerCase() === "#/tx/" + hash) $("detail-body").innerHTML = html; })
    .catch(() => { /* the next snapshot tries again */ })
    .finally(() => { refreshingTx = false; });
}

async function showTx(hash) {
  const t = await rpc("eth_getTransactionByHash", [hash]);
  if (!t) return notFound("No transaction " + hash + " known to the nodes.");
  const r = await rpc("eth_getTransactionReceipt", [hash]);
  pendingTx = r ? null : t.hash.toLowerCase();
  const status = !r ? '<span class="pill grey">pending</span>' : r.status === "0x1" ? '<span class="pill ok">success</span>' : '<span class="pill bad">failed</span>';
  // Pending for more than 3 periods: the reason the sampler found.
  const stuck = !r && snap && (snap.pending_transactions || []).find((x) => x.hash === t.hash.toLowerCase());
  let html = title("Transaction", '<span class="mono">' + esc(short(hash, 14)) + "</span> " + status) + kv([
    ["Hash", '<span class="mono">' + esc(t.hash) + "</span>"],
  ].concat(stuck ? [["Not sealed", esc("pending for " + stuck.pending_secs + " s: " + stuck.reason)]] : []).concat([
    ["Block", t.blockNumber ? '<a href="#/block/' + hexNum(t.blockNumber) + '">#' + hexNum(t.blockNumber) + "</a>" : '<span class="muted">not yet in a block</span>'],
    ["From", addrLink(t.from)],
    ["To", t.to ? addrLink(t.to) : r && r.contractAddress ? "contract created at " + addrLink(r.contractAddress) : '<span class="muted">contract creation</span>'],
    ["Value", esc(ether(t.value))],
    ["Nonce", String(hexNum(t.nonce))],
    ["Gas", (r ? hexNum(r.gasUsed).toLocaleString("en-US") + " used of " : "limit ") + hexNum(t.gas).toLocaleString("en-US")],
    ["Tip", t.maxPriorityFeePerGas != null ? hexNum(t.maxPriorityFeePerGas).toLocaleString("en-US") + " wei (max priority fee)" + (t.maxFeePerGas != null ? ' <span class="muted">· max fee ' + hexNum(t.maxFeePerGas).toLocaleString("en-US") + " wei</span>" : "") : t.gasPrice ? '<span class="muted">legacy: gas price ' + hexNum(t.gasPrice).toLocaleString("en-US") + " wei, less the base fee</span>" : "–"],
    ["Gas price", r && r.effectiveGasPrice ? hexNum(r.effectiveGasPrice).toLocaleString("en-US") + " wei (effective)" : t.gasPrice ? hexNum(t.gasPrice).toLocaleString("en-US") + " wei" : "–"],
    ["Type", String(hexNum(t.type || "0x0")) + (t.type === "0x2" ? " (EIP-1559)" : t.type === "0x0" ? " (legacy)" : "")],
    ["Input", t.input && t.input !== "0x" ? '<span class="mono">' + esc(short(t.input, 40)) + "</span> (" + (t.input.length - 2) / 2 + " bytes)" : '<span class="muted">none</span>'],
  ]));
  if (r && r.logs && r.logs.length) {
    html += "<h3>Logs (" + r.logs.length + ")</h3>";
    for (const l of r.logs) {
      html += '<div class="log">' + kv([
        ["Address", addrLink(l.address)],
        ["Topics", l.topics.map((x) => '<div class="mono">' + esc(x) + "</div>").join("") || "–"],
        ["Data", '<span class="mono">' + esc(short(l.data, 40)) + "</span>"],
      ]) + "</div>";
    }
  } else if (r) {
    html += '<p class="muted">No logs.</p>';
  }
  return html;
}

async function showAddress(addr) {
  const [bal, nonce, code] = await Promise.all([
    rpc("eth_getBalance", [addr, "latest"]),
    rpc("eth_getTransactionCount", [addr, "latest"]),
    rpc("eth_getCode", [addr, "latest"]),
  ]);
  const w = whoIs(addr);
  const isContract = code && code !== "0x";
  return title(isContract ? "Contract" : "Address", '<span class="mono">' + esc(addr) + "</span>") + kv([
    ["Balance", esc(ether(bal))],
    ["Nonce", String(hexNum(nonce))],
    ["Code", isContract ? (code.length - 2) / 2 + " bytes of contract code" : '<span class="muted">none (an externally owned account)</span>'],
    ["Belongs to", w ? esc(w.text) + ' <span class="muted">(' + esc(w.kind) + ")</span>" : '<span class="muted">no member account or signer of this network</span>'],
  ]);
}

function notFound(msg) {
  return title("Not found", "Nothing here") + '<p class="muted">' + esc(msg) + "</p>";
}

async function route() {
  const h = location.hash.replace(/^#\/?/, "");
  const [kind, ...rest] = h.split("/");
  const arg = decodeURIComponent(rest.join("/"));
  const detail = ["block", "tx", "address"].includes(kind) && arg;
  $("overview").hidden = !!detail;
  $("detail").hidden = !detail;
  if (!detail) { if (snap) renderOverview(snap); return; }
  pendingTx = null;
  const body = $("detail-body");
  body.innerHTML = '<div class="empty">Loading…</div>';
  try {
    body.innerHTML = kind === "block" ? await showBlock(arg) : kind === "tx" ? await showTx(arg) : await showAddress(arg);
  } catch (e) {
    body.innerHTML = title("Error", "Could not read it") + '<p class="muted">' + esc(e.message) + "</p>";
  }
  window.scrollTo(0, 0);
}

async function search(q) {
  q = q.trim();
  if (/^#?\d+$/.test(q)) { location.hash = "#/block/" + q.replace("#", ""); return; }
  if (/^0x[0-9a-fA-F]{40}$/.test(q)) { location.hash = "#/address/" + q.toLowerCase(); return; }
  if (/^0x[0-9a-fA-F]{64}$/.test(q)) {
    const t = await rpc("eth_getTransactionByHash", [q]).catch(() => null);
    location.hash = (t ? "#/tx/" : "#/block/") + q.toLowerCase();
    return;
  }
  $("overview").hidden = true;
  $("detail").hidden = false;
  $("detail-body").innerHTML = notFound("Search takes a block number, a block or transaction hash (0x + 64 hex digits) or an address (0x + 40 hex digits).");
}

$("search").addEventListener("submit", (e) => { e.preventDefault(); search($("q").value); });
window.addEventListener("hashchange", route);
route();
poll();
