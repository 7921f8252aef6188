/*
 * 12345 web chat widget. Embed with one tag on any page:
 *   <script src="https://<gateway>/static/widget.js" defer></script>
 * Vanilla JS, no build step. Everything (socket, stylesheet) comes from the gateway that served
 * this file. Every piece of message text is rendered with textContent, never as HTML.
 * Protocol: docs/channels/web.md.
 */
(function () {
  "use strict";

  if (window.__h12345Widget) return;
  window.__h12345Widget = true;

  var script = document.currentScript;
  if (!script) {
    var tags = document.querySelectorAll("script[src]");
    for (var i = 0; i < tags.length; i++) {
      if (/\/static\/widget\.js(\?|$)/.test(tags[i].src)) script = tags[i];
    }
  }
  var base = new URL(script ? script.src : "/static/widget.js", window.location.href);
  var GATEWAY = base.origin;
  var WS_URL = (base.protocol === "https:" ? "wss://" : "ws://") + base.host + "/ws/chat";
  var KEY_SESSION = "h12345.session";
  var KEY_LARGE = "h12345.large";
  var MAX_TEXT = 2000;
  var BACKOFF_CAP = 30000;

  var T = {
    title: "12345 智能助手",
    subtitle: "政务服务便民热线 · 在线咨询",
    open: "打开12345智能助手在线咨询",
    close: "关闭对话窗口",
    large: "大字",
    largeLabel: "大字模式（放大字号、提高对比度）",
    placeholder: "请输入您的问题，按回车发送",
    inputLabel: "输入您的问题",
    send: "发送",
    typing: "智能助手正在输入",
    reconnecting: "网络连接中断，正在重新连接…",
    agent: "人工客服",
    system: "系统消息",
    me: "我",
    bot: "智能助手",
    welcome:
      "您好！我是12345政务服务便民热线智能助手，可以为您解答社保、医保、公积金、企业开办等政策问题，" +
      "也可以帮您登记诉求、查询工单进度。请问有什么可以帮您？",
    privacy: "请勿发送身份证号、银行卡号、密码等敏感信息",
    failed: "未发送",
    link: "查看详情",
    unread: "条新消息",
    log: "对话记录",
  };

  var store = {
    get: function (k) {
      try { return window.localStorage.getItem(k); } catch (e) { return null; }
    },
    set: function (k, v) {
      try { window.localStorage.setItem(k, v); } catch (e) { /* private mode */ }
    },
    del: function (k) {
      try { window.localStorage.removeItem(k); } catch (e) { /* private mode */ }
    },
  };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(paths, size) {
    var ns = "http://www.w3.org/2000/svg";
    var s = document.createElementNS(ns, "svg");
    s.setAttribute("viewBox", "0 0 24 24");
    s.setAttribute("width", String(size));
    s.setAttribute("height", String(size));
    s.setAttribute("aria-hidden", "true");
    s.setAttribute("focusable", "false");
    paths.forEach(function (d) {
      var p = document.createElementNS(ns, "path");
      p.setAttribute("d", d);
      s.appendChild(p);
    });
    return s;
  }

  function newId() {
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); });
    return h.slice(0, 4).join("") + "-" + h.slice(4, 6).join("") + "-" + h.slice(6, 8).join("") +
      "-" + h.slice(8, 10).join("") + "-" + h.slice(10).join("");
  }

  function safeUrl(link) {
    if (typeof link !== "string") return null;
    try {
      var u = new URL(link);
      return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  function clock(ts) {
    var d = ts ? new Date(ts) : new Date();
    if (isNaN(d.getTime())) return "";
    var hh = ("0" + d.getHours()).slice(-2);
    var mm = ("0" + d.getMinutes()).slice(-2);
    return hh + ":" + mm;
  }

  // ---------------------------------------------------------------- DOM
  var host = el("div");
  host.id = "h12345-chat";
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var css = el("link");
  css.rel = "stylesheet";
  css.href = GATEWAY + "/static/widget.css";
  root.appendChild(css);

  var frame = el("div", "h-root");
  root.appendChild(frame);

  var bubble = el("button", "h-bubble");
  bubble.type = "button";
  bubble.setAttribute("aria-label", T.open);
  bubble.setAttribute("aria-expanded", "false");
  bubble.setAttribute("aria-controls", "h12345-panel");
  bubble.appendChild(svg([
    "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
  ], 28));
  var bubbleText = el("span", "h-bubble-text", "在线咨询");
  bubble.appendChild(bubbleText);
  var badge = el("span", "h-badge");
  badge.hidden = true;
  badge.setAttribute("aria-hidden", "true");
  bubble.appendChild(badge);
  frame.appendChild(bubble);

  var panel = el("section", "h-panel");
  panel.id = "h12345-panel";
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-label", T.title);
  frame.appendChild(panel);

  var header = el("header", "h-header");
  var emblem = el("span", "h-emblem", "12345");
  emblem.setAttribute("aria-hidden", "true");
  var titles = el("div", "h-titles");
  titles.appendChild(el("h2", "h-title", T.title));
  titles.appendChild(el("p", "h-subtitle", T.subtitle));
  var largeBtn = el("button", "h-large", T.large);
  largeBtn.type = "button";
  largeBtn.title = T.largeLabel;
  largeBtn.setAttribute("aria-label", T.largeLabel);
  largeBtn.setAttribute("aria-pressed", "false");
  var closeBtn = el("button", "h-close");
  closeBtn.type = "button";
  closeBtn.setAttribute("aria-label", T.close);
  closeBtn.title = T.close;
  closeBtn.appendChild(svg(["M6 6l12 12M18 6L6 18"], 20));
  header.appendChild(emblem);
  header.appendChild(titles);
  header.appendChild(largeBtn);
  header.appendChild(closeBtn);
  panel.appendChild(header);

  var notice = el("div", "h-notice");
  notice.setAttribute("role", "status");
  notice.hidden = true;
  panel.appendChild(notice);

  var list = el("div", "h-messages");
  list.setAttribute("role", "log");
  list.setAttribute("aria-live", "polite");
  list.setAttribute("aria-relevant", "additions");
  list.setAttribute("aria-label", T.log);
  list.tabIndex = 0;
  panel.appendChild(list);

  var typing = el("div", "h-typing");
  typing.hidden = true;
  typing.setAttribute("role", "status");
  var typingLabel = el("span", "h-visually-hidden", T.typing);
  typing.appendChild(typingLabel);
  for (var d = 0; d < 3; d++) {
    var dot = el("span", "h-dot");
    dot.setAttribute("aria-hidden", "true");
    typing.appendChild(dot);
  }
  panel.appendChild(typing);

  var form = el("form", "h-form");
  form.setAttribute("autocomplete", "off");
  var input = el("textarea", "h-input");
  input.rows = 1;
  input.maxLength = MAX_TEXT;
  input.placeholder = T.placeholder;
  input.setAttribute("aria-label", T.inputLabel);
  input.setAttribute("enterkeyhint", "send");
  var sendBtn = el("button", "h-send", T.send);
  sendBtn.type = "submit";
  form.appendChild(input);
  form.appendChild(sendBtn);
  panel.appendChild(form);
  panel.appendChild(el("p", "h-privacy", T.privacy));

  function mount() {
    document.body.appendChild(host);
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);

  // ---------------------------------------------------------------- state
  var ws = null;
  var ready = false;
  var attempts = 0;
  var retryTimer = null;
  var wanted = false; // connect once the citizen opened the panel or has a session
  var unread = 0;
  var rendered = {}; // message id -> element
  var pending = {}; // client_id -> {frame, node}
  var pendingOrder = [];
  var welcomeNode = null;

  function setLarge(on) {
    frame.classList.toggle("h-large-mode", on);
    largeBtn.setAttribute("aria-pressed", on ? "true" : "false");
    if (on) store.set(KEY_LARGE, "1");
    else store.del(KEY_LARGE);
  }
  setLarge(store.get(KEY_LARGE) === "1");

  function isOpen() {
    return !panel.hidden;
  }

  function open() {
    panel.hidden = false;
    frame.classList.add("h-open");
    bubble.setAttribute("aria-expanded", "true");
    unread = 0;
    showBadge();
    wanted = true;
    if (!ws) connect();
    if (!list.childNodes.length) showWelcome();
    scrollDown();
    input.focus();
  }

  function close() {
    panel.hidden = true;
    frame.classList.remove("h-open");
    bubble.setAttribute("aria-expanded", "false");
    bubble.focus();
  }

  function showBadge() {
    badge.hidden = unread === 0;
    badge.textContent = unread > 9 ? "9+" : String(unread);
    bubble.setAttribute("aria-label", unread ? T.open + "，" + unread + T.unread : T.open);
  }

  function scrollDown() {
    list.scrollTop = list.scrollHeight;
  }

  function showWelcome() {
    if (welcomeNode) return;
    welcomeNode = buildRow({ from: "bot", text: T.welcome, buttons: [] });
    welcomeNode.classList.add("h-welcome");
    list.appendChild(welcomeNode);
  }

  function clearQuickReplies() {
    var old = list.querySelectorAll(".h-quick");
    for (var i = 0; i < old.length; i++) old[i].parentNode.removeChild(old[i]);
  }

  function buildRow(m) {
    var from = m.from === "citizen" ? "citizen" : m.from === "agent" ? "agent" :
      m.from === "system" ? "system" : "bot";
    var row = el("div", "h-row h-" + from);
    var who = from === "citizen" ? T.me : from === "agent" ? T.agent :
      from === "system" ? T.system : T.bot;
    var meta = el("div", "h-meta");
    if (from === "agent" || from === "system") meta.appendChild(el("span", "h-tag", who));
    else meta.appendChild(el("span", "h-visually-hidden", who));
    var time = el("time", "h-time", clock(m.ts));
    if (m.ts) time.dateTime = m.ts;
    meta.appendChild(time);
    var text = el("div", "h-text", m.text || "");
    var box = el("div", "h-bubble-msg");
    box.appendChild(text);
    var url = safeUrl(m.link);
    if (url) {
      var a = el("a", "h-link", T.link);
      a.href = url;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      a.title = url;
      box.appendChild(a);
    }
    row.appendChild(meta);
    row.appendChild(box);
    if (from !== "citizen" && m.buttons && m.buttons.length) {
      var quick = el("div", "h-quick");
      quick.setAttribute("role", "group");
      quick.setAttribute("aria-label", "快捷选项");
      m.buttons.forEach(function (b) {
        if (!b || typeof b.title !== "string" || typeof b.payload !== "string") return;
        var q = el("button", "h-quick-btn", b.title);
        q.type = "button";
        q.addEventListener("click", function () {
          sendButton(b.title, b.payload);
        });
        quick.appendChild(q);
      });
      row.appendChild(quick);
    }
    return row;
  }

  function addMessage(m, live) {
    if (m.id !== undefined && rendered[m.id]) return;
    if (m.from === "citizen" && m.client_id && pending[m.client_id]) {
      var p = pending[m.client_id];
      p.node.classList.remove("h-pending");
      if (m.id !== undefined) {
        rendered[m.id] = p.node;
        p.node.setAttribute("data-id", String(m.id));
      }
      var t = p.node.querySelector("time");
      if (t && m.ts) {
        t.textContent = clock(m.ts);
        t.dateTime = m.ts;
      }
      dropPending(m.client_id);
      return;
    }
    clearQuickReplies(); // quick replies belong to the last message only
    var row = buildRow(m);
    if (m.id !== undefined) {
      rendered[m.id] = row;
      row.setAttribute("data-id", String(m.id));
    }
    list.appendChild(row);
    if (m.from !== "citizen") {
      typing.hidden = true;
      if (live && !isOpen()) {
        unread += 1;
        showBadge();
      }
    }
    scrollDown();
  }

  function dropPending(cid) {
    delete pending[cid];
    pendingOrder = pendingOrder.filter(function (x) { return x !== cid; });
  }

  function queue(frameObj, shownText) {
    var cid = newId();
    frameObj.client_id = cid;
    clearQuickReplies();
    var row = buildRow({ from: "citizen", text: shownText });
    row.classList.add("h-pending");
    list.appendChild(row);
    scrollDown();
    pending[cid] = { frame: frameObj, node: row };
    pendingOrder.push(cid);
    transmit(frameObj);
  }

  function sendText(text) {
    queue({ type: "message", text: text }, text);
  }

  function sendButton(title, payload) {
    queue({ type: "button", title: title, payload: payload }, title);
  }

  function transmit(obj) {
    if (ws && ready && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(obj));
      return true;
    }
    if (!ws) {
      wanted = true;
      connect();
    }
    return false;
  }

  function markFailed(cid, reason) {
    var p = pending[cid];
    if (!p) return;
    p.node.classList.remove("h-pending");
    p.node.classList.add("h-failed");
    var meta = p.node.querySelector(".h-meta");
    if (meta) meta.appendChild(el("span", "h-failed-tag", T.failed));
    dropPending(cid);
    showError(reason);
  }

  function showError(text) {
    var row = el("div", "h-error", text);
    row.setAttribute("role", "alert");
    list.appendChild(row);
    scrollDown();
  }

  function showNotice(text) {
    notice.textContent = text || "";
    notice.hidden = !text;
  }

  function renderHistory(history) {
    // The server's history is the truth: rebuild the list, keep unsent bubbles at the end.
    var keep = pendingOrder.map(function (cid) { return pending[cid].node; });
    while (list.firstChild) list.removeChild(list.firstChild);
    rendered = {};
    welcomeNode = null;
    if (!history.length && !keep.length) showWelcome();
    history.forEach(function (m) {
      addMessage(m, false);
    });
    keep.forEach(function (node) {
      list.appendChild(node);
    });
    // Resend what never reached the store (same client_id: answered once).
    pendingOrder.slice().forEach(function (cid) {
      transmit(pending[cid].frame);
    });
    scrollDown();
  }

  function onFrame(data) {
    var msg;
    try {
      msg = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "session") {
      if (typeof msg.session === "string") store.set(KEY_SESSION, msg.session);
      ready = true;
      attempts = 0;
      showNotice("");
      var hist = Array.isArray(msg.history) ? msg.history : [];
      hist.forEach(function (m) {
        if (m.from === "citizen" && m.client_id && pending[m.client_id]) {
          pending[m.client_id].node.remove();
          dropPending(m.client_id);
        }
      });
      renderHistory(hist);
    } else if (msg.type === "message") {
      addMessage(msg, true);
    } else if (msg.type === "typing") {
      typing.hidden = !msg.on;
      if (msg.on) scrollDown();
    } else if (msg.type === "error") {
      if (msg.client_id && pending[msg.client_id]) markFailed(msg.client_id, msg.text);
      else showError(msg.text || "");
    }
  }

  function connect() {
    if (ws) return;
    if (retryTimer) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }
    ready = false;
    var sock;
    try {
      sock = new WebSocket(WS_URL);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.onopen = function () {
      sock.send(JSON.stringify({ type: "hello", session: store.get(KEY_SESSION) }));
    };
    sock.onmessage = function (ev) {
      if (typeof ev.data === "string") onFrame(ev.data);
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null;
      ready = false;
      typing.hidden = true;
      scheduleReconnect();
    };
    sock.onerror = function () {
      /* onclose follows */
    };
  }

  function scheduleReconnect() {
    if (!wanted || retryTimer) return;
    showNotice(T.reconnecting);
    var delay = Math.min(BACKOFF_CAP, 1000 * Math.pow(2, attempts));
    delay = delay / 2 + Math.random() * (delay / 2); // jitter: spread reconnecting tabs
    attempts += 1;
    retryTimer = setTimeout(function () {
      retryTimer = null;
      connect();
    }, delay);
  }

  // ---------------------------------------------------------------- events
  bubble.addEventListener("click", function () {
    if (isOpen()) close();
    else open();
  });
  closeBtn.addEventListener("click", close);
  largeBtn.addEventListener("click", function () {
    setLarge(largeBtn.getAttribute("aria-pressed") !== "true");
  });
  panel.addEventListener("keydown", function (e) {
    if (e.key === "Escape") {
      e.preventDefault();
      close();
    }
  });
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    if (text.length > MAX_TEXT) text = text.slice(0, MAX_TEXT);
    input.value = "";
    autosize();
    sendText(text);
    input.focus();
  });
  input.addEventListener("keydown", function (e) {
    // Enter sends; Shift+Enter is a new line; never send while an IME is composing (拼音选词).
    if (e.key !== "Enter" || e.shiftKey || e.isComposing || e.keyCode === 229) return;
    e.preventDefault();
    if (typeof form.requestSubmit === "function") form.requestSubmit();
    else form.dispatchEvent(new Event("submit", { cancelable: true }));
  });
  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 120) + "px";
  }
  input.addEventListener("input", autosize);
  window.addEventListener("online", function () {
    if (wanted && !ws) {
      attempts = 0;
      connect();
    }
  });

  // A returning citizen reconnects at once, so agent replies and status pushes show up.
  if (store.get(KEY_SESSION)) {
    wanted = true;
    connect();
  }
})();
