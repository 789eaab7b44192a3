// hallrate dashboard: the live view's event stream and the manager's
// actions. Plain JavaScript, no build step. The token a manager enters is
// kept in sessionStorage and sent only as the Authorization header of the
// API calls that change data; the server never puts it into a page.
(function () {
	"use strict";
	var body = document.body;
	var lang = body.dataset.lang || "zh";
	var KEY = "hallrate-token";

	function token() {
		try { return sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; }
	}
	function setToken(t) {
		try { if (t) { sessionStorage.setItem(KEY, t); } else { sessionStorage.removeItem(KEY); } } catch (e) { /* storage off */ }
		showToken();
	}
	function showToken() {
		var s = document.getElementById("token-state");
		if (s) { s.classList.toggle("set", token() !== ""); }
		body.dataset.token = token() !== "" ? "set" : "unset";
	}
	function msg(text, bad) {
		var m = document.getElementById("action-msg");
		if (!m) { return; }
		m.textContent = text;
		m.classList.toggle("err", !!bad);
	}

	var printBtn = document.getElementById("print");
	if (printBtn) { printBtn.addEventListener("click", function () { window.print(); }); }

	var tf = document.getElementById("token-form");
	if (tf) {
		var input = document.getElementById("token");
		tf.addEventListener("submit", function (e) {
			e.preventDefault();
			setToken(input.value.trim());
			input.value = "";
		});
		document.getElementById("token-clear").addEventListener("click", function () { setToken(""); });
		showToken();
	}

	// Sections the manager is typing in are not replaced under their hands.
	var held = {};
	function busy(el) {
		var ins = el.querySelectorAll("input");
		for (var i = 0; i < ins.length; i++) {
			if (ins[i].value !== "") { return true; }
		}
		return el.contains(document.activeElement) && document.activeElement.tagName === "INPUT";
	}
	function apply(id, html) {
		var el = document.getElementById(id);
		if (!el) { return; }
		if (id === "followups" && busy(el)) { held[id] = html; return; }
		delete held[id];
		el.innerHTML = html;
	}
	function refresh(name) {
		return fetch("/fragment/" + name + "?lang=" + encodeURIComponent(lang), { cache: "no-store" })
			.then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
			.then(function (html) { delete held[name]; document.getElementById(name).innerHTML = html; });
	}

	var conn = document.getElementById("conn");
	if (window.EventSource && document.getElementById("tiles")) {
		var updates = 0;
		var es = new EventSource("/events?lang=" + encodeURIComponent(lang));
		es.addEventListener("open", function () {
			conn.textContent = body.dataset.live;
			conn.classList.add("up");
			body.dataset.stream = "open";
		});
		es.addEventListener("error", function () {
			// EventSource reconnects by itself; the first update after
			// that carries every section again.
			conn.textContent = body.dataset.reconnecting;
			conn.classList.remove("up");
			body.dataset.stream = "reconnecting";
		});
		es.addEventListener("update", function (ev) {
			var u = JSON.parse(ev.data);
			Object.keys(u.sections).forEach(function (id) { apply(id, u.sections[id]); });
			(u.changed || []).forEach(function (c) {
				var t = document.getElementById("tile-" + c);
				if (t) {
					t.classList.add("flash");
					setTimeout(function () { t.classList.remove("flash"); }, 1200);
				}
			});
			body.dataset.updates = String(++updates);
		});
	}

	function post(url, data) {
		var h = { "Content-Type": "application/json" };
		var t = token();
		if (t) { h.Authorization = "Bearer " + t; }
		return fetch(url, { method: "POST", headers: h, body: JSON.stringify(data || {}), credentials: "same-origin" });
	}
	function outcome(r, then) {
		if (r.ok) { then(); return; }
		if (r.status === 401 || r.status === 403) { msg(body.dataset.refused, true); return; }
		r.json().then(function (j) { msg(body.dataset.failed + ": " + (j.error || r.status), true); },
			function () { msg(body.dataset.failed + ": " + r.status, true); });
	}

	document.addEventListener("submit", function (e) {
		var f = e.target;
		if (!f.classList || !f.classList.contains("close")) { return; }
		e.preventDefault();
		var note = f.elements.note.value.trim();
		if (note === "") { f.elements.note.focus(); return; }
		post("/api/v1/followups/" + encodeURIComponent(f.dataset.id) + "/close", { note: note })
			.then(function (r) {
				outcome(r, function () {
					f.elements.note.value = "";
					msg(body.dataset.closed, false);
					refresh("followups");
				});
			}, function () { msg(body.dataset.failed, true); });
	});
	document.addEventListener("click", function (e) {
		var b = e.target;
		if (b.classList && b.classList.contains("assign")) {
			post("/api/v1/ratings/" + encodeURIComponent(b.dataset.id) + "/assign", { projectNo: b.dataset.case })
				.then(function (r) { outcome(r, function () { refresh("audit"); }); }, function () { msg(body.dataset.failed, true); });
			return;
		}
		if (!b.classList || !b.classList.contains("retry")) { return; }
		post("/api/v1/evaluations/" + encodeURIComponent(b.dataset.id) + "/retry")
			.then(function (r) { outcome(r, function () { refresh("audit"); }); }, function () { msg(body.dataset.failed, true); });
	});
})();
