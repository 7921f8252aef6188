// Work-order lookup page. Every value from the server is set with textContent.
(function () {
  "use strict";
  var form = document.getElementById("lookup-form");
  var errorBox = document.getElementById("error");
  var result = document.getElementById("result");

  function fmt(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    return d.getFullYear() + "年" + (d.getMonth() + 1) + "月" + d.getDate() + "日 " +
      String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }
  // A link from a status notice carries the tracking number (?no=…); the digits are still asked.
  var given = new URLSearchParams(window.location.search).get("no");
  if (given) {
    document.getElementById("tracking-no").value = given.slice(0, 40);
    document.getElementById("phone-last4").focus();
  }

  function set(id, text) { document.getElementById(id).textContent = text || "—"; }
  function showError(text) { errorBox.textContent = text; errorBox.hidden = false; result.hidden = true; }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    errorBox.hidden = true;
    var no = document.getElementById("tracking-no").value.trim();
    var last4 = document.getElementById("phone-last4").value.trim();
    if (!no) { showError("请填写工单号。"); return; }
    if (!/^\d{4}$/.test(last4)) { showError("请填写手机号后4位数字。"); return; }
    fetch("/api/v1/work-orders/" + encodeURIComponent(no) + "?phone_last4=" + encodeURIComponent(last4),
          { headers: { "Accept": "application/json" } })
      .then(function (resp) { return resp.json().then(function (body) { return { ok: resp.ok, body: body }; }); })
      .then(function (r) {
        if (!r.ok) { showError(r.body.error || "查询失败，请稍后再试。"); return; }
        var o = r.body;
        set("r-no", o.tracking_no);
        set("r-status", o.status_label);
        set("r-category", o.category_name);
        set("r-department", o.department_name);
        set("r-created", fmt(o.created_at));
        set("r-response-due", fmt(o.response_due));
        set("r-result-due", fmt(o.result_due));
        set("r-phone", o.phone_masked);
        var delay = document.getElementById("r-delay");
        delay.hidden = !o.delay_reason;
        delay.textContent = o.delay_reason ? "延期说明：" + o.delay_reason : "";
        document.getElementById("r-supervision").hidden = !o.supervision;
        var list = document.getElementById("r-timeline");
        list.replaceChildren();
        o.timeline.forEach(function (t) {
          var li = document.createElement("li");
          li.textContent = fmt(t.at) + " " + t.label + (t.note ? "：" + t.note : "");
          list.appendChild(li);
        });
        result.hidden = false;
      })
      .catch(function () { showError("网络异常，请稍后再试。"); });
  });
})();
