/* 12345 agent console. Vanilla JS, no build step. Every text from a citizen (or anyone) is
   put into the page with textContent, never innerHTML. */
(function () {
  "use strict";

  var API = "/console/api";
  var CHANNELS = {
    web: { label: "网页", cls: "ch-web" },
    wechat: { label: "微信", cls: "ch-wechat" },
    telegram: { label: "TG", cls: "ch-telegram" },
    rest: { label: "API", cls: "ch-rest" }
  };
  var STATES = { pending: "待接入", assigned: "处理中", resolved: "已结束",
    returned_to_bot: "已转回机器人", expired: "已超时" };
  var ROLES = { agent: "坐席", supervisor: "班长", admin: "管理员" };
  var SENDERS = { citizen: "市民", bot: "机器人", agent: "坐席", system: "系统" };
  var SLOT_LABELS = { last_intents: "最近意图", last_text: "最后一句", phone: "手机号",
    contact_name: "联系人", name: "姓名", location: "地点", description: "问题描述",
    category: "类别", category_code: "类别", kind: "诉求类型", tracking_no: "工单编号",
    claimed_by: "接管坐席", slots: "" };
  var REASONS = { request_human: "主动转人工", fallback: "机器人无法回答",
    rasa_down: "机器人故障", claimed: "坐席接管" };

  var OUTCOMES = { resolved: "已解决", returned_to_bot: "转回机器人", expired: "超时未接",
    open: "进行中" };

  var state = { me: null, csrf: "", handoffs: {}, tab: "pending", current: null,
    detail: null, seenOpened: {}, agents: [], ws: null, skew: 0, departments: [], view: "chat" };

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function request(method, path, body) {
    var opts = { method: method, credentials: "same-origin", headers: {} };
    if (method !== "GET") {
      opts.headers["Content-Type"] = "application/json";
      opts.headers["X-CSRF-Token"] = state.csrf;
      opts.body = JSON.stringify(body || {});
    }
    return fetch(API + path, opts).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (resp.status === 401 && path !== "/login") { location.href = "/console/login"; }
        if (!resp.ok) { var e = new Error(data.error || ("请求失败 " + resp.status)); e.status = resp.status; throw e; }
        return data;
      });
    });
  }

  // ---- login page ---------------------------------------------------------------------------
  function initLogin() {
    var form = $("login-form");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var err = $("login-error");
      err.hidden = true;
      $("login-submit").disabled = true;
      request("POST", "/login", { username: $("username").value, password: $("password").value })
        .then(function () { location.href = "/console/"; })
        .catch(function (e) { err.textContent = e.message; err.hidden = false; })
        .then(function () { $("login-submit").disabled = false; });
    });
  }

  // ---- time helpers -------------------------------------------------------------------------
  function serverNow() { return Date.now() + state.skew; }
  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var m = Math.floor(seconds / 60), s = seconds % 60;
    if (m >= 60) return Math.floor(m / 60) + "小时" + (m % 60) + "分";
    return m > 0 ? m + "分" + (s < 10 ? "0" : "") + s + "秒" : s + "秒";
  }
  function waited(h) {
    var start = Date.parse(h.created_at);
    var end = h.assigned_at ? Date.parse(h.assigned_at) : serverNow();
    return (end - start) / 1000;
  }
  function clock(iso) {
    var d = new Date(iso);
    return (d.getHours() < 10 ? "0" : "") + d.getHours() + ":" + (d.getMinutes() < 10 ? "0" : "") + d.getMinutes();
  }
  function dateTime(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    return (d.getMonth() + 1) + "月" + d.getDate() + "日 " + clock(iso);
  }
  function isBoss() { return !!state.me && (state.me.role === "supervisor" || state.me.role === "admin"); }

  // ---- alerts: sound + title badge ---------------------------------------------------------
  var audioCtx = null;
  function beep() {
    try {
      audioCtx = audioCtx || new (window.AudioContext || window.webkitAudioContext)();
      var osc = audioCtx.createOscillator(), gain = audioCtx.createGain();
      osc.frequency.value = 880; gain.gain.value = 0.08;
      osc.connect(gain); gain.connect(audioCtx.destination);
      osc.start(); osc.stop(audioCtx.currentTime + 0.25);
    } catch (e) { /* no audio available */ }
  }
  function updateTitle() {
    var pending = Object.keys(state.handoffs).filter(function (k) {
      return state.handoffs[k].state === "pending"; }).length;
    document.title = (pending ? "(" + pending + ") " : "") + "12345 坐席";
  }

  // ---- queue --------------------------------------------------------------------------------
  function channelBadge(channel) {
    var c = CHANNELS[channel] || { label: channel, cls: "ch-rest" };
    var b = el("span", "channel " + c.cls, c.label);
    b.title = channel;
    return b;
  }

  function loadQueue() {
    return request("GET", "/handoffs").then(function (data) {
      state.skew = Date.parse(data.now) - Date.now();
      state.handoffs = {};
      data.handoffs.forEach(function (h) { state.handoffs[h.id] = h; state.seenOpened[h.id] = true; });
      renderQueue();
    });
  }

  function renderQueue() {
    var list = $("queue-list");
    clear(list);
    var all = Object.keys(state.handoffs).map(function (k) { return state.handoffs[k]; });
    var pending = all.filter(function (h) { return h.state === "pending"; });
    var boss = state.me && (state.me.role === "supervisor" || state.me.role === "admin");
    // Agents see their own chats under 处理中; supervisors and admins see everyone's.
    var mine = all.filter(function (h) {
      return h.state === "assigned" && (boss || (h.agent && state.me && h.agent.id === state.me.id));
    });
    $("count-pending").textContent = pending.length;
    $("count-assigned").textContent = mine.length;
    updateTitle();
    if (state.tab === "bot") { renderBotConversations(); return; }
    var items = state.tab === "pending" ? pending : mine;
    items.sort(function (a, b) { return Date.parse(a.created_at) - Date.parse(b.created_at); });
    $("queue-empty").hidden = items.length > 0;
    $("queue-empty").textContent = state.tab === "pending" ? "暂无待接入的会话" : "暂无处理中的会话";
    items.forEach(function (h) {
      var li = el("li", "queue-item" + (state.current === h.id ? " selected" : ""));
      li.dataset.id = h.id;
      li.setAttribute("role", "button");
      li.tabIndex = 0;
      var top = el("div", "qi-top");
      top.appendChild(channelBadge(h.channel));
      top.appendChild(el("strong", "qi-name", h.citizen));
      // Pending: how long the citizen has waited; assigned: how long the agent has had it.
      var wait = el("span", "qi-wait");
      wait.dataset.since = h.assigned_at || h.created_at;
      wait.dataset.prefix = h.assigned_at ? "处理 " : "等待 ";
      wait.textContent = wait.dataset.prefix + duration((serverNow() - Date.parse(wait.dataset.since)) / 1000);
      top.appendChild(wait);
      li.appendChild(top);
      li.appendChild(el("div", "qi-text", h.last_text || "（无文字）"));
      var meta = el("div", "qi-meta", (REASONS[h.reason] || h.reason) +
        (h.agent ? " · " + h.agent.display_name : ""));
      li.appendChild(meta);
      li.addEventListener("click", function () { select(h.id); });
      li.addEventListener("keydown", function (ev) { if (ev.key === "Enter") select(h.id); });
      list.appendChild(li);
    });
  }

  function renderBotConversations() {
    var list = $("queue-list");
    request("GET", "/conversations").then(function (data) {
      if (state.tab !== "bot") return;
      clear(list);
      $("queue-empty").hidden = data.conversations.length > 0;
      $("queue-empty").textContent = "最近30分钟没有机器人会话";
      data.conversations.forEach(function (c) {
        var li = el("li", "queue-item");
        var top = el("div", "qi-top");
        top.appendChild(channelBadge(c.channel));
        top.appendChild(el("strong", "qi-name", c.citizen));
        top.appendChild(el("span", "qi-wait", clock(c.last_message_at)));
        li.appendChild(top);
        li.appendChild(el("div", "qi-text", c.last_text));
        var take = el("button", "small", "接管");
        take.addEventListener("click", function () {
          request("POST", "/conversations/" + encodeURIComponent(c.conversation) + "/claim")
            .then(function (data) { state.handoffs[data.handoff.id] = data.handoff;
              switchTab("assigned"); select(data.handoff.id); })
            .catch(function (e) { alert(e.message); });
        });
        li.appendChild(take);
        list.appendChild(li);
      });
    });
  }

  function switchTab(tab) {
    state.tab = tab;
    Array.prototype.forEach.call(document.querySelectorAll(".tab"), function (b) {
      b.classList.toggle("active", b.dataset.tab === tab);
    });
    renderQueue();
  }

  function tick() {
    Array.prototype.forEach.call(document.querySelectorAll(".qi-wait[data-since]"), function (n) {
      n.textContent = n.dataset.prefix + duration((serverNow() - Date.parse(n.dataset.since)) / 1000);
    });
    if (state.detail) {
      var h = state.detail.handoff;
      $("conv-wait").textContent = h.state === "pending" ? "已等待 " + duration(waited(h)) : "";
    }
  }

  // ---- conversation ---------------------------------------------------------------------------
  function select(id) {
    state.current = id;
    renderQueue();
    return request("GET", "/handoffs/" + encodeURIComponent(id)).then(function (data) {
      if (state.current !== id) return;
      state.detail = data;
      state.handoffs[id] = data.handoff.state === "pending" || data.handoff.state === "assigned"
        ? data.handoff : state.handoffs[id];
      renderDetail();
    }).catch(function (e) {
      if (e.status === 403) { if (state.current === id) deselect(); return; }  // no longer ours
      alert(e.message);
    });
  }

  // The ownership rule as the page sees it: pending chats are open to all, an assigned chat to
  // its agent; supervisors see everything. An agent may not reopen a chat they closed or lost.
  function mayView(h) {
    return isBoss() || h.state === "pending" ||
      (h.state === "assigned" && !!h.agent && !!state.me && h.agent.id === state.me.id);
  }

  function deselect() {
    state.current = null; state.detail = null;
    $("conv").hidden = true; $("no-selection").hidden = false;
    renderQueue();
  }

  function renderDetail() {
    var d = state.detail, h = d.handoff;
    $("no-selection").hidden = true;
    $("conv").hidden = false;
    var badge = $("conv-channel");
    var c = CHANNELS[h.channel] || { label: h.channel, cls: "ch-rest" };
    badge.className = "channel " + c.cls; badge.textContent = c.label;
    $("conv-citizen").textContent = h.citizen;
    $("conv-state").textContent = STATES[h.state] || h.state;
    $("conv-state").className = "state st-" + h.state;
    var open = h.state === "pending" || h.state === "assigned";
    var mine = h.agent && state.me && h.agent.id === state.me.id;
    var boss = state.me.role === "supervisor" || state.me.role === "admin";
    $("btn-claim").hidden = h.state !== "pending";
    // The ownership rule (docs/console.md): only the owner or a supervisor acts on a chat.
    $("btn-return").hidden = !open || !(mine || boss);
    $("btn-close").hidden = !(h.state === "assigned" && (mine || boss));
    $("reassign-to").hidden = $("btn-reassign").hidden = !(open && boss);
    $("composer").hidden = !(h.state === "assigned" && (mine || boss));
    $("order-form-box").hidden = !(h.state === "assigned" && (mine || boss));
    var list = $("transcript");
    clear(list);
    d.transcript.forEach(appendMessage);
    list.scrollTop = list.scrollHeight;
    renderContext(d);
    var canned = $("canned");
    while (canned.options.length > 1) canned.remove(1);
    d.canned.forEach(function (cr) {
      var o = el("option", null, cr.title); o.value = cr.text; canned.appendChild(o);
    });
    if (boss) loadAgents();
    $("identities-box").hidden = !boss;
    $("identities-msg").textContent = "";
    if (boss) loadIdentities(h.conversation);
  }

  // ---- linked channels (supervisors and admins) ---------------------------------------------
  function loadIdentities(conversation) {
    var list = $("identities");
    clear(list);
    return request("GET", "/conversations/" + encodeURIComponent(conversation) + "/identities")
      .then(function (data) {
        if (!state.detail || state.detail.handoff.conversation !== conversation) return;
        clear(list);
        var several = data.identities.length > 1;
        data.identities.forEach(function (i) {
          var li = el("li", "identity" + (i.current ? " current" : ""));
          li.appendChild(channelBadge(i.channel));
          li.appendChild(el("strong", "identity-name", i.display_name));
          li.appendChild(el("span", "muted identity-id", i.masked_id));
          if (i.current) li.appendChild(el("span", "tag", "当前会话"));
          if (several && i.conversation) {
            var btn = el("button", "small danger", "解除关联");
            btn.addEventListener("click", function () { confirmUnlink(conversation, i); });
            li.appendChild(btn);
          }
          list.appendChild(li);
        });
        if (data.phone_verified) list.appendChild(el("li", "muted", "已验证手机号"));
      })
      .catch(function (e) { $("identities-msg").textContent = e.message; });
  }

  function confirmUnlink(viewed, identity) {
    var dialog = $("unlink-dialog");
    $("unlink-text").textContent = "确定将" + identity.channel_name + "渠道「" + identity.display_name +
      "」（" + identity.masked_id + "）与该市民的其他渠道解除关联吗？";
    dialog.onclose = function () {
      if (dialog.returnValue !== "confirm") return;
      var msg = $("identities-msg");
      request("POST", "/conversations/" + encodeURIComponent(identity.conversation) + "/unlink")
        .then(function (data) {
          msg.textContent = "已解除关联：" + identity.channel_name + "渠道已成为独立账号，转移工单 " +
            data.orders_moved + " 件。";
          return loadIdentities(viewed);
        })
        .catch(function (e) { msg.textContent = e.message; });
    };
    dialog.returnValue = "";
    dialog.showModal();
  }

  function appendMessage(m) {
    var list = $("transcript");
    if (list.querySelector('[data-mid="' + Number(m.id) + '"]')) return;
    var li = el("li", "msg from-" + m.from + (m.internal ? " internal" : ""));
    li.dataset.mid = m.id;
    var head = el("div", "msg-head");
    head.appendChild(el("span", "who", m.internal ? "内部备注" : (SENDERS[m.from] || m.from)));
    head.appendChild(el("span", "time", clock(m.ts)));
    if (m.intent) {
      head.appendChild(el("span", "intent", m.intent + " " + Math.round((m.confidence || 0) * 100) + "%"));
    }
    li.appendChild(head);
    var body = el("div", "msg-text", m.text);
    li.appendChild(body);
    if (m.buttons && m.buttons.length) {
      var row = el("div", "msg-buttons");
      m.buttons.forEach(function (b) { row.appendChild(el("span", "chip", b.title)); });
      li.appendChild(row);
    }
    if (m.masked) {
      var reveal = el("button", "link reveal", "显示号码");
      reveal.title = "查看完整号码（将被记录）";
      reveal.addEventListener("click", function () {
        request("POST", "/messages/" + Number(m.id) + "/reveal").then(function (data) {
          body.textContent = data.text; reveal.remove();
        }).catch(function (e) { alert(e.message); });
      });
      li.appendChild(reveal);
    }
    list.appendChild(li);
  }

  function slotText(value) {
    if (Array.isArray(value)) {
      return value.map(function (v) { return v && typeof v === "object" ? JSON.stringify(v) : String(v); }).join("、");
    }
    return String(value);
  }

  function renderContext(d) {
    var slots = $("slots");
    clear(slots);
    var entries = [];
    var masked = {};
    (d.context_masked || []).forEach(function (p) { masked[JSON.stringify(p)] = true; });
    function label(k) { return Object.prototype.hasOwnProperty.call(SLOT_LABELS, k) ? SLOT_LABELS[k] : k; }
    function walk(prefix, keys, value) {
      if (value && typeof value === "object" && !Array.isArray(value)) {
        Object.keys(value).forEach(function (k) {
          var name = label(k);
          walk(prefix && name ? prefix + " · " + name : (prefix || name), keys.concat([k]), value[k]);
        });
      } else if (value !== null && value !== undefined && value !== "" &&
                 !(Array.isArray(value) && value.length === 0)) {
        entries.push([prefix, slotText(value), keys]);
      }
    }
    walk("", [], d.context || {});
    var hid = d.handoff.id;
    entries.forEach(function (e) {
      slots.appendChild(el("dt", null, e[0]));
      var dd = el("dd", null, e[1]);
      if (masked[JSON.stringify(e[2])]) {
        var reveal = el("button", "link reveal", "显示");
        reveal.title = "查看完整内容（将被记录）";
        reveal.addEventListener("click", function () {
          request("POST", "/handoffs/" + encodeURIComponent(hid) + "/context/reveal", { path: e[2] })
            .then(function (data) { dd.textContent = slotText(data.value); })
            .catch(function (err) { alert(err.message); });
        });
        dd.appendChild(document.createTextNode(" "));
        dd.appendChild(reveal);
      }
      slots.appendChild(dd);
    });
    $("slots-empty").hidden = entries.length > 0;
    var intents = $("intents");
    clear(intents);
    d.intents.forEach(function (i) {
      var li = el("li");
      li.appendChild(el("span", "intent-name", i.intent));
      var bar = el("span", "bar"); var fill = el("span", "fill");
      fill.style.width = Math.round((i.confidence || 0) * 100) + "%";
      bar.appendChild(fill); li.appendChild(bar);
      li.appendChild(el("span", "pct", Math.round((i.confidence || 0) * 100) + "%"));
      li.appendChild(el("div", "intent-text", i.text));
      intents.appendChild(li);
    });
    $("intents-empty").hidden = d.intents.length > 0;
    var orders = $("orders");
    clear(orders);
    (d.work_orders || []).forEach(function (o) { orders.appendChild(orderCard(o)); });
  }

  // ---- work orders: one card, in the conversation view and on the supervisor board -------------
  function orderCard(o, open) {
    var overdue = o.supervision || o.result_overdue || o.response_overdue;
    var li = el("li", "order" + (overdue ? " overdue" : ""));
    li.dataset.no = o.tracking_no;
    var head = el("div", "order-head");
    head.appendChild(el("strong", null, o.tracking_no));
    head.appendChild(el("span", "state wo-" + o.status, o.status_label));
    if (o.supervision) head.appendChild(el("span", "flag", "督办"));
    if (o.result_overdue) head.appendChild(el("span", "flag", "办理超期"));
    else if (o.response_overdue) head.appendChild(el("span", "flag", "响应超期"));
    li.appendChild(head);
    li.appendChild(el("div", "muted", [o.kind_label, o.category, o.department].filter(Boolean).join(" · ")));
    var desc = el("div", "order-desc", o.description);
    li.appendChild(desc);
    var meta = el("dl", "slots order-meta");
    var contact = el("dd", null, [o.contact_name, o.phone].filter(Boolean).join(" ") || "—");
    var place = el("dd", null, o.location || "—");
    [["联系人", contact], ["地点", place], ["受理", el("dd", null, dateTime(o.created_at))],
     ["响应时限", el("dd", o.response_overdue ? "late" : null, dateTime(o.response_due))],
     ["办结时限", el("dd", o.result_overdue ? "late" : null, dateTime(o.result_due))]
    ].forEach(function (row) { meta.appendChild(el("dt", null, row[0])); meta.appendChild(row[1]); });
    if (o.delay_reason) { meta.appendChild(el("dt", null, "延期说明")); meta.appendChild(el("dd", "order-delay", o.delay_reason)); }
    li.appendChild(meta);
    if (o.masked && o.can_reveal) {
      var reveal = el("button", "link reveal", "显示号码");
      reveal.title = "查看完整联系方式和描述（将被记录）";
      reveal.addEventListener("click", function () {
        request("POST", "/work-orders/" + encodeURIComponent(o.tracking_no) + "/reveal").then(function (data) {
          desc.textContent = data.description;
          contact.textContent = [data.contact_name, data.phone].filter(Boolean).join(" ") || "—";
          place.textContent = data.location || "—";
          reveal.remove();
        }).catch(function (e) { alert(e.message); });
      });
      li.appendChild(reveal);
    }
    if (o.next.length || o.can_note || o.can_delay) li.appendChild(orderActions(o, li, open));
    if (o.timeline && o.timeline.length) {
      var hist = el("details", "order-history");
      hist.appendChild(el("summary", null, "办理记录（" + o.timeline.length + "）"));
      var ol = el("ol", "timeline");
      o.timeline.forEach(function (t) {
        var item = el("li");
        item.appendChild(el("span", "muted", dateTime(t.at) + " "));
        item.appendChild(el("strong", null, t.label));
        if (t.note) item.appendChild(el("div", "timeline-note", t.note));
        ol.appendChild(item);
      });
      hist.appendChild(ol);
      li.appendChild(hist);
    }
    return li;
  }

  function orderActions(o, card, open) {
    var box = el("details", "order-actions");
    box.open = !!open;
    box.appendChild(el("summary", null, "办理 / 更新工单"));
    var msg = el("p", "muted order-msg");
    msg.setAttribute("role", "status");
    var path = "/work-orders/" + encodeURIComponent(o.tracking_no);
    function send(sub, body, button) {
      button.disabled = true;
      msg.textContent = "";
      return request("POST", path + sub, body).then(function (data) {
        var fresh = orderCard(data.work_order, true);
        card.replaceWith(fresh);
        var done = fresh.querySelector(".order-msg");
        if (done) done.textContent = "已更新：" + data.work_order.status_label;
      }).catch(function (e) { msg.textContent = e.message; button.disabled = false; });
    }
    if (o.next.length) {
      var form = el("form", "wo-form");
      var to = el("select"); to.setAttribute("aria-label", "变更状态");
      o.next.forEach(function (n) { var opt = el("option", null, n.label); opt.value = n.status; to.appendChild(opt); });
      var dept = el("select"); dept.setAttribute("aria-label", "承办单位");
      var keep = el("option", null, o.department ? "保持：" + o.department : "请选择承办单位"); keep.value = ""; dept.appendChild(keep);
      state.departments.forEach(function (d) { var opt = el("option", null, d.name); opt.value = d.code; dept.appendChild(opt); });
      var note = el("textarea"); note.rows = 2; note.maxLength = 2000;
      note.setAttribute("aria-label", "状态说明");
      note.placeholder = "说明（市民可见；退单写原因，办结写办理结果）";
      var go = el("button", "primary small", "更新状态"); go.type = "submit";
      function sync() { dept.hidden = to.value !== "dispatched"; }
      to.addEventListener("change", sync); sync();
      form.appendChild(to); form.appendChild(dept); form.appendChild(note); form.appendChild(go);
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var body = { to: to.value, note: note.value };
        if (to.value === "dispatched" && dept.value) body.department_code = dept.value;
        send("/status", body, go);
      });
      box.appendChild(form);
    }
    if (o.can_note) {
      var nform = el("form", "wo-form");
      var text = el("textarea"); text.rows = 2; text.maxLength = 2000; text.required = true;
      text.setAttribute("aria-label", "补充说明");
      text.placeholder = "补充说明（市民查询工单时可见）";
      var add = el("button", "small", "添加补充"); add.type = "submit";
      nform.appendChild(text); nform.appendChild(add);
      nform.addEventListener("submit", function (ev) { ev.preventDefault(); send("/note", { text: text.value }, add); });
      box.appendChild(nform);
    }
    if (o.can_delay) {
      var dform = el("form", "wo-form");
      var reason = el("input"); reason.maxLength = 500; reason.required = true;
      reason.setAttribute("aria-label", "延期原因");
      reason.placeholder = "延期原因（将告知市民）";
      reason.value = o.delay_reason || "";
      var save = el("button", "small", "保存延期说明"); save.type = "submit";
      dform.appendChild(reason); dform.appendChild(save);
      dform.addEventListener("submit", function (ev) { ev.preventDefault(); send("/delay", { reason: reason.value }, save); });
      box.appendChild(dform);
    }
    box.appendChild(msg);
    return box;
  }

  // ---- supervisor board: open work orders and analytics --------------------------------------
  function switchView(view) {
    state.view = view;
    Array.prototype.forEach.call(document.querySelectorAll(".view"), function (b) {
      b.classList.toggle("active", b.dataset.view === view);
    });
    $("chat-view").hidden = view !== "chat";
    $("board").hidden = view !== "board";
    $("agents-view").hidden = view !== "agents";
    if (view === "board") loadBoard();
    if (view === "agents") loadAgentAdmin();
  }

  // ---- admins: deactivate / reactivate agents, reset passwords ---------------------------------
  function loadAgentAdmin() {
    var list = $("agent-admin");
    request("GET", "/agents").then(function (data) {
      clear(list);
      data.agents.forEach(function (a) { list.appendChild(agentRow(a)); });
    }).catch(function (e) { $("agents-msg").textContent = e.message; });
  }

  function agentRow(a) {
    var li = el("li", "order" + (a.active ? "" : " inactive"));
    var head = el("div", "order-head");
    head.appendChild(el("strong", null, a.display_name));
    head.appendChild(el("span", "muted", a.username));
    head.appendChild(el("span", "role", ROLES[a.role] || a.role));
    head.appendChild(el("span", "state", a.active ? "启用" : "已停用"));
    li.appendChild(head);
    var msg = el("p", "muted order-msg");
    msg.setAttribute("role", "status");
    function done(text) { return function () { $("agents-msg").textContent = text; loadAgentAdmin(); }; }
    function failed(e) { msg.textContent = e.message; }
    if (!state.me || a.id !== state.me.id) {
      var toggle = el("button", a.active ? "small danger" : "small", a.active ? "停用" : "启用");
      toggle.addEventListener("click", function () {
        if (a.active && !confirm("确定停用 " + a.display_name + "？其登录将立即失效。")) return;
        request("POST", "/agents/" + Number(a.id) + "/active", { active: !a.active })
          .then(done((a.active ? "已停用 " : "已启用 ") + a.display_name)).catch(failed);
      });
      li.appendChild(toggle);
    }
    var form = el("form", "wo-form");
    var pw = el("input"); pw.type = "password"; pw.minLength = 10; pw.maxLength = 1024; pw.required = true;
    pw.autocomplete = "new-password";
    pw.setAttribute("aria-label", "新密码");
    pw.placeholder = "新密码（至少10位）";
    var reset = el("button", "small", "重置密码"); reset.type = "submit";
    form.appendChild(pw); form.appendChild(reset);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      request("POST", "/agents/" + Number(a.id) + "/password", { password: pw.value })
        .then(done("已重置 " + a.display_name + " 的密码")).catch(failed);
      pw.value = "";
    });
    li.appendChild(form);
    li.appendChild(msg);
    return li;
  }

  function minutes(seconds) {
    return seconds === null || seconds === undefined ? "—" : duration(seconds);
  }

  function loadBoard() {
    var days = $("board-days").value;
    request("GET", "/analytics?days=" + encodeURIComponent(days)).then(renderStats)
      .catch(function (e) { $("board-error").textContent = e.message; $("board-error").hidden = false; });
    request("GET", "/work-orders" + ($("board-overdue").checked ? "?overdue=1" : "")).then(function (data) {
      var list = $("board-orders");
      clear(list);
      data.work_orders.forEach(function (o) { list.appendChild(orderCard(o)); });
      $("board-empty").hidden = data.work_orders.length > 0;
    }).catch(function (e) { $("board-error").textContent = e.message; $("board-error").hidden = false; });
    request("GET", "/undelivered-notices").then(renderNotices)
      .catch(function (e) { $("board-error").textContent = e.message; $("board-error").hidden = false; });
  }

  var NOTICE_STATES = { retrying: "重试中", given_up: "已放弃重试", refused: "平台拒收" };
  var CHANNELS = { web: "网页", wechat: "微信", telegram: "Telegram", rest: "接口" };

  // Status notices a citizen's channel has not taken (text only: reasons come from platforms).
  function renderNotices(data) {
    var list = $("board-notices");
    clear(list);
    data.notices.forEach(function (n) {
      var item = el("li", "order notice-" + n.state);
      item.appendChild(el("div", "order-head", n.tracking_no + " · " + n.label));
      item.appendChild(el("div", "muted", (CHANNELS[n.channel] || n.channel) + " · " +
        (NOTICE_STATES[n.state] || n.state) + " · 已尝试" + n.attempts + "次 · " + dateTime(n.written_at)));
      if (n.reason) item.appendChild(el("div", "muted", n.reason));
      list.appendChild(item);
    });
    $("board-notices-empty").hidden = data.notices.length > 0;
  }

  function renderStats(data) {
    $("board-error").hidden = true;
    var h = data.handoffs, r = data.ratings, w = data.work_orders;
    var stats = $("stats");
    clear(stats);
    function card(title, value, sub) {
      var c = el("div", "stat");
      c.appendChild(el("div", "stat-title", title));
      c.appendChild(el("div", "stat-value", value));
      if (sub) c.appendChild(el("div", "muted", sub));
      stats.appendChild(c);
    }
    var outcomes = Object.keys(h.outcomes).map(function (k) { return (OUTCOMES[k] || k) + " " + h.outcomes[k]; }).join(" · ");
    card("转人工", String(h.count), outcomes || "暂无");
    card("转人工前对话时长（中位）", minutes(h.median_time_to_handoff));
    card("排队等待（中位）", minutes(h.median_wait));
    card("人工处理时长（中位）", minutes(h.median_handling));
    card("满意率", r.satisfaction_rate === null ? "—" : Math.round(r.satisfaction_rate * 1000) / 10 + "%",
      "满意 " + r.scores.satisfied + " · 基本满意 " + r.scores.basically_satisfied + " · 不满意 " + r.scores.unsatisfied);
    card("在办工单", String(w.open), "超期 " + w.overdue + " · 督办 " + w.supervision + " · 延期 " + w.delayed + " · 期间受理 " + w.filed);
    var perDay = $("per-day");
    clear(perDay);
    var max = Math.max.apply(null, [1].concat(h.per_day.map(function (d) { return d.handoffs; })));
    h.per_day.forEach(function (d) {
      var li = el("li");
      li.appendChild(el("span", "day", d.day.slice(5)));
      var bar = el("span", "bar"); var fill = el("span", "fill");
      fill.style.width = Math.round(d.handoffs / max * 100) + "%";
      bar.appendChild(fill); li.appendChild(bar);
      li.appendChild(el("span", "pct", String(d.handoffs)));
      perDay.appendChild(li);
    });
  }

  function loadCategories() {
    request("GET", "/categories").then(function (data) {
      var sel = $("wo-category");
      data.categories.forEach(function (c) {
        var o = el("option", null, c.name); o.value = c.code; sel.appendChild(o);
      });
      state.departments = data.departments || [];
    }).catch(function () { /* the form still works without a category */ });
  }

  function loadAgents() {
    request("GET", "/agents").then(function (data) {
      var sel = $("reassign-to");
      clear(sel);
      data.agents.filter(function (a) { return a.active; }).forEach(function (a) {
        var o = el("option", null, a.display_name + (a.online ? "（在线，" + a.load + "）" : "（离线）"));
        o.value = a.id; sel.appendChild(o);
      });
    });
  }

  function act(path, body) {
    var id = state.current;
    return request("POST", "/handoffs/" + encodeURIComponent(id) + path, body).then(function (data) {
      var h = data.handoff;
      if (h) {
        if (h.state === "pending" || h.state === "assigned") state.handoffs[id] = h;
        else delete state.handoffs[id];
        renderQueue();
        if (!mayView(h)) { deselect(); return; }
      }
      return select(id);
    }).catch(function (e) { alert(e.message); });
  }

  // ---- live socket ----------------------------------------------------------------------------
  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(proto + location.host + "/console/ws");
    var beat = null;
    state.ws = ws;
    ws.onopen = function () {
      $("live-dot").className = "dot on"; $("live-label").textContent = "在线";
      beat = setInterval(function () { ws.send(JSON.stringify({ type: "heartbeat" })); }, 20000);
    };
    ws.onclose = function (ev) {
      clearInterval(beat);
      $("live-dot").className = "dot off"; $("live-label").textContent = "已断开，重连中…";
      if (ev.code === 4401) { location.href = "/console/login"; return; }
      setTimeout(function () { connect(); loadQueue(); }, 2000);
    };
    ws.onmessage = function (ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      if (data.type === "handoff") onHandoff(data);
      else if (data.type === "message") onMessage(data);
    };
  }

  function onHandoff(ev) {
    var h = ev.handoff;
    var known = state.handoffs[h.id];
    // Events may arrive late; a hand-off never goes back to pending, so ignore such a step.
    if (known && known.state === "assigned" && h.state === "pending") return;
    var open = h.state === "pending" || h.state === "assigned";
    if (open) state.handoffs[h.id] = h; else delete state.handoffs[h.id];
    if (h.state === "pending" && !state.seenOpened[h.id]) {
      state.seenOpened[h.id] = true;
      beep();
    }
    renderQueue();
    if (state.current === h.id && !mayView(h)) deselect();
    else if (state.current === h.id && state.detail && state.detail.handoff.state !== h.state) select(h.id);
  }

  function onMessage(ev) {
    var d = state.detail;
    if (d && d.handoff.conversation === ev.conversation) {
      appendMessage(ev.message);
      var list = $("transcript"); list.scrollTop = list.scrollHeight;
    }
    if (ev.message.from === "citizen") {
      Object.keys(state.handoffs).forEach(function (k) {
        var h = state.handoffs[k];
        if (h.conversation === ev.conversation) { h.last_text = ev.message.text.slice(0, 80); }
      });
      renderQueue();
    }
  }

  // ---- wiring -------------------------------------------------------------------------------
  function initConsole() {
    request("GET", "/me").then(function (data) {
      state.me = data.agent; state.csrf = data.csrf;
      $("me-name").textContent = data.agent.display_name;
      $("me-role").textContent = ROLES[data.agent.role] || data.agent.role;
      $("views").hidden = !isBoss();
      $("view-agents").hidden = data.agent.role !== "admin";
      loadCategories();
      return loadQueue();
    }).then(connect);
    Array.prototype.forEach.call(document.querySelectorAll(".tab"), function (b) {
      b.addEventListener("click", function () { switchTab(b.dataset.tab); });
    });
    Array.prototype.forEach.call(document.querySelectorAll(".view"), function (b) {
      b.addEventListener("click", function () { switchView(b.dataset.view); });
    });
    $("board-days").addEventListener("change", loadBoard);
    $("board-overdue").addEventListener("change", loadBoard);
    $("board-refresh").addEventListener("click", loadBoard);
    $("agents-refresh").addEventListener("click", loadAgentAdmin);
    $("logout").addEventListener("click", function () {
      request("POST", "/logout").then(function () { location.href = "/console/login"; });
    });
    $("btn-claim").addEventListener("click", function () { act("/claim").then(function () { switchTab("assigned"); }); });
    $("btn-return").addEventListener("click", function () { act("/return"); });
    $("btn-close").addEventListener("click", function () { act("/close"); });
    $("btn-reassign").addEventListener("click", function () {
      act("/reassign", { agent_id: Number($("reassign-to").value) });
    });
    $("canned").addEventListener("change", function () {
      if (this.value) { $("reply-text").value = this.value; $("reply-text").focus(); this.selectedIndex = 0; }
    });
    $("reply-text").addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); $("btn-send").click(); }
    });
    $("composer").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var text = $("reply-text").value.trim();
      var err = $("composer-error");
      err.hidden = true;
      if (!text) return;
      var asNote = $("as-note").checked;
      request("POST", "/handoffs/" + encodeURIComponent(state.current) + (asNote ? "/note" : "/reply"), { text: text })
        .then(function (data) {
          $("reply-text").value = "";
          if (data.message) appendMessage(data.message);
          if (data.delivered === false) { err.textContent = "已保存，但该渠道暂时无法推送，市民下次打开时可见。"; err.hidden = false; }
        })
        .catch(function (e) { err.textContent = e.message; err.hidden = false; });
    });
    $("order-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var msg = $("order-msg");
      request("POST", "/handoffs/" + encodeURIComponent(state.current) + "/work-orders", {
        kind: $("wo-kind").value, category_code: $("wo-category").value, description: $("wo-description").value,
        location: $("wo-location").value, contact_name: $("wo-name").value, phone: $("wo-phone").value
      }).then(function (data) {
        msg.textContent = "已登记工单 " + data.work_order.tracking_no;
        $("order-form").reset();
        select(state.current);
      }).catch(function (e) { msg.textContent = e.message; });
    });
    setInterval(tick, 1000);
  }

  if (document.body.classList.contains("login-page")) initLogin();
  else initConsole();
})();
