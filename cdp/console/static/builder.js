// The segment builder (cdp/console/screens/segments.py): a form that writes the
// segment language. Conditions live in a tree (groups of all/any, each node
// negatable); every change rewrites the YAML in textarea#definition and asks
// POST /console/segments/preview (debounced) for the live count and the SQL.
// Editing the text instead is fine: once the server has parsed it, the form
// is rebuilt from it. Ids are stable for tests: a node's controls are named
// after its path (c0, c1_0, ...): c0-field, c0-op, c0-value, c0-a-name,
// c0-a-w0-value, c0-follow, c0-within, c0-min, ...
"use strict";
(function () {
  var source = document.getElementById("builder-data");
  var mount = document.getElementById("builder");
  if (!source || !mount) { return; }
  var data = JSON.parse(source.textContent);
  var T = data.texts;
  var text = document.getElementById("definition");
  var nameInput = document.getElementById("segment-name");
  var descInput = document.getElementById("segment-description");
  var countOut = document.getElementById("live-count");
  var statusOut = document.getElementById("preview-status");
  var errorOut = document.getElementById("preview-error");
  var warningsOut = document.getElementById("preview-warnings");
  var sqlOut = document.getElementById("sql");
  var csrf = document.querySelector("#segment-form input[name=csrf]").value;
  var noScript = document.getElementById("no-script");
  if (noScript) { noScript.hidden = true; }

  var FIELDS = {};
  data.fields.forEach(function (f) { FIELDS[f.name] = f; });

  var root = group("all");
  var params = null;   // kept from the text: the form has no control for them
  var rawSql = null;   // a raw-SQL definition: the form stands aside

  // ------------------------------------------------------------------ model
  function group(mode) { return {kind: "group", mode: mode, negate: false, children: []}; }
  function filter(property) { return {property: property || "", op: "contains", value: ""}; }
  function spec(name, withProduct) {
    return {name: name || "", where: withProduct ? [filter("products[*].product_id")] : [], within: ""};
  }
  function make(kind) {
    if (kind === "group") { return group("any"); }
    if (kind === "event") {
      var e = spec(data.events[0] || "Order Completed", false);
      e.kind = "event"; e.negate = false; e.countOp = "gte"; e.countValue = "1";
      return e;
    }
    if (kind === "bought") {
      var b = spec("Order Completed", true);
      b.kind = "event"; b.negate = false; b.countOp = "gte"; b.countValue = "1";
      return b;
    }
    if (kind === "sequence") {
      return {kind: "sequence", negate: false, first: spec("Order Completed", true),
              follow: "not_then", second: spec("Order Completed", true), within: "30", min: ""};
    }
    var first = data.fields[0];
    return {kind: "field", negate: false, field: first.name, op: opsFor(first.kind)[0], value: ""};
  }
  function opsFor(kind) { return data.ops[kind].concat(data.null_ops); }
  function needsValue(op) { return data.null_ops.indexOf(op) < 0; }

  // Text typed in a box → the value the language wants.
  function isNumber(s) { return /^-?\d+(\.\d+)?$/.test(s); }
  function scalar(s, kind) {
    s = String(s).trim();
    if (s.charAt(0) === "$") { return s; }
    if (kind === "number" && isNumber(s)) { return Number(s); }
    if (kind === "bool") { return s === "true"; }
    if (kind === "auto") {
      if (isNumber(s)) { return Number(s); }
      if (s === "true" || s === "false") { return s === "true"; }
    }
    return s;
  }
  function valueOf(raw, op, kind) {
    if (!needsValue(op)) { return undefined; }
    if (op === "in" || op === "not_in" || op === "between") {
      return String(raw).split(",").map(function (p) { return p.trim(); })
        .filter(function (p) { return p !== ""; }).map(function (p) { return scalar(p, kind); });
    }
    return scalar(raw, kind);
  }
  function days(s) { s = String(s).trim(); return s === "" ? undefined : scalar(s, "number"); }
  function shown(v) {
    if (v === undefined || v === null) { return ""; }
    return Array.isArray(v) ? v.join(", ") : String(v);
  }

  function specRules(s) {
    var out = {};
    var names = s.name.split(",").map(function (n) { return n.trim(); }).filter(Boolean);
    out.name = names.length === 1 ? names[0] : names;
    if (s.where.length) {
      out.where = s.where.map(function (w) {
        var f = {property: w.property.trim(), op: w.op};
        var v = valueOf(w.value, w.op, "auto");
        if (v !== undefined) { f.value = v; }
        return f;
      });
    }
    var within = days(s.within);
    if (within !== undefined) { out.within_days = within; }
    return out;
  }
  function rules(node) {
    var out;
    if (node.kind === "group") {
      var o = {}; o[node.mode] = node.children.map(rules); out = o;
    } else if (node.kind === "field") {
      var f = FIELDS[node.field] || {kind: "text", rule: "trait"};
      var c = {field: node.field, op: node.op};
      var v = valueOf(node.value, node.op, f.kind);
      if (v !== undefined) { c.value = v; }
      out = {}; out[f.rule] = c;
    } else if (node.kind === "event") {
      var e = specRules(node);
      if (!(node.countOp === "gte" && String(node.countValue).trim() === "1")) {
        e.count = {op: node.countOp, value: valueOf(node.countValue, node.countOp, "number")};
      }
      out = {event: e};
    } else {
      var q = {first: specRules(node.first)};
      q[node.follow] = specRules(node.second);
      var w = days(node.within), m = days(node.min);
      if (w !== undefined) { q.within_days = w; }
      if (m !== undefined) { q.min_days = m; }
      out = {sequence: q};
    }
    return node.negate ? {not: out} : out;
  }
  function document_() {
    var d = {};
    if (nameInput.value.trim()) { d.name = nameInput.value.trim(); }
    if (descInput.value.trim()) { d.description = descInput.value.trim(); }
    if (params) { d.params = params; }
    if (rawSql !== null) { d.sql = rawSql; } else if (root.children.length) { d.rules = rules(root); }
    return d;
  }

  // The language's document → the tree (the inverse of rules()).
  function fromSpec(s) {
    return {
      name: Array.isArray(s.name) ? s.name.join(", ") : shown(s.name),
      where: (s.where || []).map(function (w) { return {property: w.property, op: w.op, value: shown(w.value)}; }),
      within: shown(s.within_days)
    };
  }
  function fromRule(r) {
    var key = Object.keys(r)[0], body = r[key], node;
    if (key === "not") { node = fromRule(body); node.negate = !node.negate; return node; }
    if (key === "all" || key === "any") {
      node = group(key); node.children = body.map(fromRule); return node;
    }
    if (key === "trait" || key === "metric") {
      return {kind: "field", negate: false, field: body.field, op: body.op, value: shown(body.value)};
    }
    if (key === "event") {
      node = fromSpec(body); node.kind = "event"; node.negate = false;
      node.countOp = body.count ? body.count.op : "gte";
      node.countValue = body.count ? shown(body.count.value) : "1";
      return node;
    }
    return {kind: "sequence", negate: false, first: fromSpec(body.first),
            follow: body.then ? "then" : "not_then", second: fromSpec(body.then || body.not_then),
            within: shown(body.within_days), min: shown(body.min_days)};
  }
  function load(doc) {
    if (!doc || typeof doc !== "object") { return; }
    params = doc.params || null;
    rawSql = typeof doc.sql === "string" ? doc.sql : null;
    if (doc.rules) {
      var top = fromRule(doc.rules);
      root = top.kind === "group" && !top.negate ? top : (function () { var g = group("all"); g.children = [top]; return g; })();
    } else {
      root = group("all");
    }
  }

  // ------------------------------------------------------------------- YAML
  var RESERVED = /^(true|false|yes|no|on|off|y|n|null|~)$/i;
  function plain(s) {
    return /^[A-Za-z_$][A-Za-z0-9_\-]*( [A-Za-z0-9_\-]+)*$/.test(s) && !RESERVED.test(s);
  }
  function flowScalar(v) {
    if (typeof v === "number" || typeof v === "boolean") { return String(v); }
    return plain(v) ? v : JSON.stringify(v);
  }
  function isScalar(v) { return v === null || typeof v !== "object"; }
  function flowable(v) {
    if (isScalar(v)) { return true; }
    if (Array.isArray(v)) { return v.every(isScalar); }
    return Object.keys(v).every(function (k) {
      var x = v[k]; return isScalar(x) || (Array.isArray(x) && x.every(isScalar));
    });
  }
  function flow(v) {
    if (isScalar(v)) { return flowScalar(v); }
    if (Array.isArray(v)) { return "[" + v.map(flowScalar).join(", ") + "]"; }
    return "{" + Object.keys(v).map(function (k) { return k + ": " + flow(v[k]); }).join(", ") + "}";
  }
  function pad(n) { return new Array(n + 1).join(" "); }
  function yamlMap(obj, indent) {
    var lines = [];
    Object.keys(obj).forEach(function (k) {
      var v = obj[k];
      if (flowable(v)) { lines.push(pad(indent) + k + ": " + flow(v)); return; }
      lines.push(pad(indent) + k + ":");
      lines.push.apply(lines, Array.isArray(v) ? yamlList(v, indent + 2) : yamlMap(v, indent + 2));
    });
    return lines;
  }
  function yamlList(arr, indent) {
    var lines = [];
    arr.forEach(function (item) {
      if (flowable(item)) { lines.push(pad(indent) + "- " + flow(item)); return; }
      var inner = Array.isArray(item) ? yamlList(item, indent + 2) : yamlMap(item, indent + 2);
      inner[0] = pad(indent) + "- " + inner[0].slice(indent + 2);
      lines.push.apply(lines, inner);
    });
    return lines;
  }
  function yaml(doc) {
    var lines = [];
    Object.keys(doc).forEach(function (k) {
      var v = doc[k];
      if (k === "sql") { lines.push("sql: |"); v.split("\n").forEach(function (l) { lines.push("  " + l); }); return; }
      if (flowable(v)) { lines.push(k + ": " + flow(v)); return; }
      lines.push(k + ":");
      lines.push.apply(lines, Array.isArray(v) ? yamlList(v, 2) : yamlMap(v, 2));
    });
    return lines.join("\n") + "\n";
  }

  // ------------------------------------------------------------------- form
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }
  function labelled(id, label, control, hint) {
    var box = el("div", {"class": "ctl"}, [el("label", {"for": id, text: label}), control]);
    if (hint) {
      control.setAttribute("aria-describedby", id + "-hint");
      box.appendChild(el("span", {id: id + "-hint", "class": "muted hint", text: hint}));
    }
    return box;
  }
  function select(id, options, value, onChange) {
    var s = el("select", {id: id});
    options.forEach(function (o) {
      if (o.group) {
        var g = el("optgroup", {label: o.group});
        o.options.forEach(function (p) { g.appendChild(option(p, value)); });
        s.appendChild(g);
      } else { s.appendChild(option(o, value)); }
    });
    s.addEventListener("change", function () { onChange(s.value); });
    return s;
  }
  function option(o, value) {
    var opt = el("option", {value: o.value, text: o.label});
    if (o.value === value) { opt.selected = true; }
    return opt;
  }
  function input(id, value, onInput, attrs) {
    var i = el("input", Object.assign({id: id, type: "text", autocomplete: "off"}, attrs || {}));
    i.value = value;
    i.addEventListener("input", function () { onInput(i.value); });
    return i;
  }
  function button(id, label, onClick, cls) {
    var b = el("button", {id: id, type: "button", "class": cls || "secondary", text: label});
    b.addEventListener("click", onClick);
    return b;
  }
  function opOptions(kind) {
    return opsFor(kind).map(function (op) { return {value: op, label: T["op." + op]}; });
  }
  function daysInput(id, value, label, set) {
    return labelled(id, label, input(id, value, set, {inputmode: "numeric", "class": "short"}));
  }

  function renderSpec(s, id, title) {
    var box = el("fieldset", {"class": "spec", id: id}, [el("legend", {text: title})]);
    box.appendChild(labelled(id + "-name", T.event,
      input(id + "-name", s.name, function (v) { s.name = v; changed(); }, {list: "event-names"}),
      T.events_hint));
    s.where.forEach(function (w, i) {
      var wid = id + "-w" + i;
      var row = el("div", {"class": "row filter"});
      row.appendChild(labelled(wid + "-property", T.property,
        input(wid + "-property", w.property, function (v) { w.property = v; changed(); }, {list: "property-names"})));
      row.appendChild(labelled(wid + "-op", T.op, select(wid + "-op", opOptions("property"), w.op,
        function (v) { w.op = v; rebuild(); })));
      if (needsValue(w.op)) {
        var list = /product_id$/.test(w.property) ? {list: "product-ids"} : {};
        row.appendChild(labelled(wid + "-value", T.value,
          input(wid + "-value", w.value, function (v) { w.value = v; changed(); }, list),
          /in$|between/.test(w.op) ? T.values_hint : ""));
      }
      row.appendChild(button(wid + "-remove", T.remove, function () { s.where.splice(i, 1); rebuild(); }, "link"));
      box.appendChild(row);
    });
    box.appendChild(button(id + "-add-filter", T.add_filter, function () { s.where.push(filter("")); rebuild(); }));
    box.appendChild(daysInput(id + "-within", s.within, T.within, function (v) { s.within = v; changed(); }));
    return box;
  }

  function renderNode(node, id, siblings, index) {
    var box = el("fieldset", {"class": "cond cond-" + node.kind, id: id});
    var legend = node.kind === "group" ? T["kind.group"] : T["kind." + node.kind];
    box.appendChild(el("legend", {text: legend}));
    if (siblings) {
      var head = el("div", {"class": "row head"});
      var neg = el("input", {type: "checkbox", id: id + "-not"});
      neg.checked = node.negate;
      neg.addEventListener("change", function () { node.negate = neg.checked; changed(); });
      head.appendChild(el("div", {"class": "check"}, [neg, el("label", {"for": id + "-not", "class": "inline", text: T.negate})]));
      head.appendChild(button(id + "-remove", T.remove, function () { siblings.splice(index, 1); rebuild(); }, "link"));
      box.appendChild(head);
    }
    if (node.kind === "group") {
      box.appendChild(labelled(id + "-mode", T.match, select(id + "-mode",
        [{value: "all", label: T.all}, {value: "any", label: T.any}], node.mode,
        function (v) { node.mode = v; changed(); })));
      var list = el("div", {"class": "children"});
      node.children.forEach(function (child, i) {
        list.appendChild(renderNode(child, (siblings ? id + "_" : "c") + i, node.children, i));
      });
      box.appendChild(list);
      var addId = siblings ? id + "-add" : "add";
      var kinds = ["field", "event", "bought", "sequence", "group"].map(function (k) {
        return {value: k, label: T["kind." + k]};
      });
      var kindSelect = select(addId + "-kind", kinds, "bought", function () {});
      box.appendChild(el("div", {"class": "row add"}, [
        labelled(addId + "-kind", T.add_kind, kindSelect),
        button(addId, T.add, function () { node.children.push(make(kindSelect.value)); rebuild(); })
      ]));
    } else if (node.kind === "field") {
      var f = FIELDS[node.field] || {kind: "text"};
      var groups = [
        {group: T.traits, options: data.fields.filter(function (x) { return x.rule === "trait"; })
          .map(function (x) { return {value: x.name, label: x.name}; })},
        {group: T.metrics, options: data.fields.filter(function (x) { return x.rule === "metric"; })
          .map(function (x) { return {value: x.name, label: x.name}; })}
      ];
      var row = el("div", {"class": "row"});
      row.appendChild(labelled(id + "-field", T.field, select(id + "-field", groups, node.field, function (v) {
        node.field = v;
        var kind = (FIELDS[v] || {kind: "text"}).kind;
        if (opsFor(kind).indexOf(node.op) < 0) { node.op = opsFor(kind)[0]; }
        if (kind === "bool" && node.value !== "false") { node.value = "true"; }
        rebuild();
      }), f.doc));
      row.appendChild(labelled(id + "-op", T.op, select(id + "-op", opOptions(f.kind), node.op,
        function (v) { node.op = v; rebuild(); })));
      if (needsValue(node.op)) {
        if (f.kind === "bool") {
          if (node.value !== "false") { node.value = "true"; }
          row.appendChild(labelled(id + "-value", T.value, select(id + "-value",
            [{value: "true", label: T["true"]}, {value: "false", label: T["false"]}], node.value,
            function (v) { node.value = v; changed(); })));
        } else {
          row.appendChild(labelled(id + "-value", T.value,
            input(id + "-value", node.value, function (v) { node.value = v; changed(); }),
            /in$|between/.test(node.op) ? T.values_hint : ""));
        }
      }
      box.appendChild(row);
    } else if (node.kind === "event") {
      box.appendChild(renderSpec(node, id + "-e", T.event));
      var count = el("div", {"class": "row"});
      count.appendChild(labelled(id + "-count-op", T.count, select(id + "-count-op", opOptions("count").filter(function (o) {
        return needsValue(o.value);
      }), node.countOp, function (v) { node.countOp = v; changed(); })));
      count.appendChild(labelled(id + "-count-value", T.value,
        input(id + "-count-value", node.countValue, function (v) { node.countValue = v; changed(); }, {"class": "short"})));
      box.appendChild(count);
    } else {
      box.appendChild(renderSpec(node.first, id + "-a", T.first));
      box.appendChild(labelled(id + "-follow", T.follow, select(id + "-follow",
        [{value: "then", label: T["follow.then"]}, {value: "not_then", label: T["follow.not_then"]}],
        node.follow, function (v) { node.follow = v; changed(); })));
      box.appendChild(renderSpec(node.second, id + "-b", T.second));
      var when = el("div", {"class": "row"});
      when.appendChild(daysInput(id + "-within", node.within, T.seq_within, function (v) { node.within = v; changed(); }));
      when.appendChild(daysInput(id + "-min", node.min, T.seq_min, function (v) { node.min = v; changed(); }));
      box.appendChild(when);
    }
    return box;
  }

  function datalist(id, values) {
    var list = el("datalist", {id: id});
    values.forEach(function (v) { list.appendChild(el("option", {value: v})); });
    return list;
  }

  function render() {
    var focused = document.activeElement && mount.contains(document.activeElement) ? document.activeElement.id : null;
    mount.textContent = "";
    mount.appendChild(datalist("event-names", data.events));
    mount.appendChild(datalist("property-names", data.properties));
    mount.appendChild(datalist("product-ids", data.products));
    if (rawSql !== null) {
      mount.appendChild(el("p", {"class": "notice", id: "sql-only", text: T.sql_only}));
      return;
    }
    mount.appendChild(renderNode(root, "root", null, 0));
    if (focused) {
      var again = document.getElementById(focused);
      if (again) { again.focus(); }
    }
  }

  // ---------------------------------------------------------------- preview
  var timer = null, sequence = 0, inFlight = null;
  var fromText = false;   // the last change came from typing in the textarea

  function changed() {       // a value in the form changed: rewrite the text
    fromText = false;
    var doc = document_();
    text.value = root.children.length || rawSql !== null ? yaml(doc) : "";
    schedule();
  }
  function rebuild() { render(); changed(); }

  function schedule() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(preview, 300);
  }
  function show(count, status) {
    countOut.textContent = count === null ? "–" : count.toLocaleString();
    if (count === null) { countOut.removeAttribute("data-count"); } else { countOut.setAttribute("data-count", String(count)); }
    statusOut.textContent = status || "";
  }
  function fail(message) {
    errorOut.textContent = message;
    errorOut.hidden = !message;
  }
  function preview() {
    var body = text.value;
    if (!body.trim()) {
      show(null, T.empty); sqlOut.textContent = ""; fail(""); warningsOut.textContent = "";
      countOut.removeAttribute("data-state");
      return;
    }
    var mine = ++sequence;
    if (inFlight) { inFlight.abort(); }
    inFlight = new AbortController();
    countOut.setAttribute("data-state", "counting");
    statusOut.textContent = T.counting;
    fetch(data.preview, {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify({definition: body}),
      credentials: "same-origin",
      signal: inFlight.signal
    }).then(function (answer) {
      return answer.json().catch(function () { return {ok: false, error: T.failed + " (" + answer.status + ")"}; });
    }).then(function (result) {
      if (mine !== sequence) { return; }
      countOut.setAttribute("data-state", result.ok ? "done" : "error");
      warningsOut.textContent = "";
      if (!result.ok) {
        show(null, ""); fail(result.error || T.failed); sqlOut.textContent = "";
        return;
      }
      fail("");
      show(result.count, T.members + " · " + result.ms + " ms");
      var values = Object.keys(result.values || {}).map(function (k) {
        return "-- $" + k + " = " + JSON.stringify(result.values[k]);
      });
      sqlOut.textContent = result.sql + (values.length ? "\n" + values.join("\n") : "");
      (result.warnings || []).forEach(function (w) { warningsOut.appendChild(el("li", {text: w})); });
      if (fromText && body === text.value) { load(result.definition); syncInputs(result.definition); render(); }
    }).catch(function (error) {
      if (error && error.name === "AbortError") { return; }
      if (mine === sequence) { countOut.setAttribute("data-state", "error"); fail(T.failed + ": " + error); }
    });
  }
  function syncInputs(doc) {
    if (doc && typeof doc.name === "string" && doc.name !== "preview") { nameInput.value = doc.name; }
    if (doc && typeof doc.description === "string") { descInput.value = doc.description; }
  }

  text.addEventListener("input", function () { fromText = true; schedule(); });
  [nameInput, descInput].forEach(function (i) {
    i.addEventListener("input", function () { if (!fromText) { changed(); } });
  });
  // Enter in a builder box must not send the save form.
  mount.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.tagName === "INPUT") { event.preventDefault(); }
  });

  if (data.initial) { load(data.initial); }
  render();
  if (text.value.trim()) { schedule(); } else { show(null, T.empty); }
})();
