#!/usr/bin/env python3
"""Lint dashboards/*.json (Python 3 standard library only).

Every dashboard must be importable as is and follow the house rules:

  * JSON with title, a unique uid, schemaVersion 36-39, panels, templating;
  * a `datasource` variable (type datasource, query prometheus) and `job`,
    `instance`, `module` variables; query variables use the datasource
    variable; multi/all variables have allValue ".*" (regex matchers);
  * no hard-coded datasource: every "datasource" anywhere is exactly
    {"type": "prometheus", "uid": "${datasource}"} (or Grafana's built-in
    annotation source), no ${DS_...} import placeholders;
  * every panel except rows has that datasource and at least one target;
    every target has it too, a non-empty expr and a unique refId;
  * unique panel ids (rows and nested panels included);
  * gridPos inside the 24-column grid and no two panels overlapping
    (panels inside a collapsed row are checked among themselves);
  * a unit (a Grafana unit id or a custom `prefix:`/`suffix:`/`si:`/
    `count:`/`time:` unit) and thresholds (first step null, then
    ascending) on every panel, and valid units/thresholds in overrides;
  * PromQL: every pki_*/process_* metric named is in docs/metrics.md; every
    selector of one has job=~"$job" and instance=~"$instance", and
    module=~"$module" when the metric has a module label; label names used
    in selectors exist in docs/metrics.md; every $variable used is defined,
    and every defined variable is used;
  * data links to /d/<uid> point at a dashboard of this directory;
  * pki-overview has the 30/14/7-day expiry thresholds.

Usage: python3 tests/dashboards_lint.py [DASHBOARD_DIR [METRICS_MD]]
Exit status 0 when clean, 1 with one line per problem.
"""

import glob
import json
import os
import re
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
GRAFANA_BUILTIN_DS = {"type": "grafana", "uid": "-- Grafana --"}
REQUIRED_VARS = ("datasource", "job", "instance", "module")
BUILTIN_VARS = {"__range", "__interval", "__rate_interval", "__range_s", "__interval_ms",
                "__range_ms", "__from", "__to", "__dashboard", "__name", "__org", "__user",
                "__data", "__field", "__series", "__value", "__all", "timeFilter"}

# Grafana unit ids (packages/grafana-data/src/valueFormats/categories.ts),
# the ones a PKI dashboard can sensibly use and then some.
UNITS = {
    "none", "string", "short", "percent", "percentunit", "hex", "hex0x", "sci", "locale",
    "bits", "bytes", "kbytes", "mbytes", "gbytes", "tbytes", "decbits", "decbytes",
    "deckbytes", "decmbytes", "decgbytes", "pps", "bps", "Bps", "KBs", "Kbits", "MBs", "Mbits",
    "dateTimeAsIso", "dateTimeAsIsoNoDateIfToday", "dateTimeAsUS", "dateTimeAsUSNoDateIfToday",
    "dateTimeFromNow", "hertz", "ns", "µs", "ms", "s", "m", "h", "d", "dtdurationms",
    "dtdurations", "dthms", "dtdhms", "timeticks", "clockms", "clocks", "cps", "ops", "reqps",
    "rps", "wps", "iops", "cpm", "opm", "rpm", "wpm", "bool", "bool_yes_no", "bool_on_off",
}
CUSTOM_UNIT = re.compile(r"^(prefix|suffix|si|count|time|currency):.+$")
GRID_W = 24

METRIC_RE = re.compile(r"\b((?:pki|process)_[A-Za-z0-9_]+)\b")
SELECTOR_RE = re.compile(r"\b((?:pki|process)_[A-Za-z0-9_]+)\s*(\{[^}]*\})?")
NAME_SELECTOR_RE = re.compile(r'\{[^}]*__name__\s*=~?\s*"([^"]*)"[^}]*\}')
MATCHER_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
VAR_RE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)(?::[A-Za-z]+)?\}|([A-Za-z_][A-Za-z0-9_]*))")


def load_metrics_doc(path):
    """{metric: set(labels)} from the tables of docs/metrics.md. The labels
    column is a comma-separated list; "same" inherits the previous row's
    labels, "same key labels", "cert key labels" and "as above" the
    certificate key labels."""
    cert_key = {"module", "target", "address", "position", "subject_cn", "issuer_cn", "serial"}
    metrics = {}
    prev = set()
    with open(path) as f:
        for line in f:
            if not line.startswith("| `"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 4:
                continue
            names = re.findall(r"`([a-z_:][a-z0-9_:]*)`", cells[0])
            cell = cells[3]
            labels = set()
            if cell.startswith("same key labels") or "cert key labels" in cell or \
                    cell.startswith("as above"):
                labels |= cert_key
            elif cell.startswith("same"):
                labels |= prev
            for tok in re.split(r"[,+()]", cell):
                tok = tok.strip().strip("`")
                if re.fullmatch(r"[a-z_][a-z0-9_]*", tok) and tok != "same":
                    labels.add(tok)
            for n in names:
                metrics.setdefault(n, set()).update(labels)
            prev = labels
    return metrics


def walk(obj, path=""):
    """Yield (path, dict) for every dict in obj."""
    if isinstance(obj, dict):
        yield path, obj
        for k, v in obj.items():
            yield from walk(v, path + "/" + str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from walk(v, "%s[%d]" % (path, i))


def all_panels(panels):
    for p in panels:
        yield p
        for c in p.get("panels", []) or []:
            yield c


def check_thresholds(th, where, problems):
    if not isinstance(th, dict) or th.get("mode") not in ("absolute", "percentage"):
        problems.append("%s: thresholds need mode absolute|percentage" % where)
        return
    steps = th.get("steps")
    if not isinstance(steps, list) or not steps:
        problems.append("%s: thresholds have no steps" % where)
        return
    if steps[0].get("value") is not None:
        problems.append("%s: first threshold step must have value null" % where)
    last = None
    for s in steps:
        if not s.get("color"):
            problems.append("%s: threshold step without colour" % where)
        v = s.get("value")
        if v is None:
            continue
        if not isinstance(v, (int, float)):
            problems.append("%s: threshold value %r is not a number" % (where, v))
            continue
        if last is not None and v <= last:
            problems.append("%s: threshold steps not ascending (%r after %r)" % (where, v, last))
        last = v


def check_unit(unit, where, problems):
    if not isinstance(unit, str) or not unit:
        problems.append("%s: no unit" % where)
    elif unit not in UNITS and not CUSTOM_UNIT.match(unit):
        problems.append("%s: unknown unit %r" % (where, unit))


def overlaps(a, b):
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and
            a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def check_grid(panels, where, problems):
    boxes = []
    for p in panels:
        g = p.get("gridPos")
        name = "%s panel %s %r" % (where, p.get("id"), p.get("title"))
        if not isinstance(g, dict) or not all(isinstance(g.get(k), int) for k in "xywh"):
            problems.append("%s: gridPos needs integer x, y, w, h" % name)
            continue
        if g["x"] < 0 or g["y"] < 0 or g["w"] < 1 or g["h"] < 1 or g["x"] + g["w"] > GRID_W:
            problems.append("%s: gridPos %r outside the %d-column grid" % (name, g, GRID_W))
        for other_name, og in boxes:
            if overlaps(g, og):
                problems.append("%s overlaps %s" % (name, other_name))
        boxes.append((name, g))


def check_expr(expr, where, defined_vars, metrics_doc, problems, used_vars):
    label_universe = {"job", "instance", "__name__", "le"}
    for labels in metrics_doc.values():
        label_universe |= labels
    for m in VAR_RE.finditer(expr):
        v = m.group(1) or m.group(2)
        if v in BUILTIN_VARS or v.startswith("__"):
            continue
        if v not in defined_vars:
            problems.append("%s: uses undefined variable $%s" % (where, v))
        used_vars.add(v)
    for name in set(METRIC_RE.findall(expr)):
        if name not in metrics_doc:
            problems.append("%s: metric %s is not in docs/metrics.md" % (where, name))
    selectors = [(m.group(1), m.group(2) or "") for m in SELECTOR_RE.finditer(expr)]
    for m in NAME_SELECTOR_RE.finditer(expr):
        for n in re.findall(r"(?:pki|process)_[A-Za-z0-9_]+", m.group(1)):
            if n not in metrics_doc:
                problems.append("%s: metric %s is not in docs/metrics.md" % (where, n))
        names = re.findall(r"(?:pki|process)_[A-Za-z0-9_]+", m.group(1))
        selectors.append((names[0] if names else "", m.group(0)))
    for name, sel in selectors:
        matchers = {k: (op, v) for k, op, v in MATCHER_RE.findall(sel)}
        for k in matchers:
            if k not in label_universe:
                problems.append("%s: label %s (in %s%s) is not a label of any metric"
                                % (where, k, name, sel))
        need = [("job", "$job"), ("instance", "$instance")]
        if "module" in metrics_doc.get(name, set()):
            need.append(("module", "$module"))
        for label, var in need:
            op, val = matchers.get(label, (None, None))
            if op != "=~" or val != var:
                problems.append('%s: selector %s%s lacks %s=~"%s"' % (where, name, sel, label, var))


def lint_dashboard(path, metrics_doc, uids, problems):
    base = os.path.basename(path)
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        problems.append("%s: not valid JSON: %s" % (base, e))
        return None
    for key in ("title", "uid", "schemaVersion", "panels", "templating"):
        if key not in d:
            problems.append("%s: no %s" % (base, key))
    uid = d.get("uid")
    if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid or ""):
        problems.append("%s: uid %r must be 1-40 characters [A-Za-z0-9_-]" % (base, uid))
    elif uid in uids:
        problems.append("%s: uid %s also used by %s" % (base, uid, uids[uid]))
    else:
        uids[uid] = base
    sv = d.get("schemaVersion")
    if not isinstance(sv, int) or not 36 <= sv <= 39:
        problems.append("%s: schemaVersion %r (want 36-39, Grafana 9.4-10.x)" % (base, sv))
    if d.get("id") not in (None,):
        problems.append("%s: id must be null (Grafana assigns it on import)" % base)

    # -- datasources: none hard-coded -------------------------------------
    text = json.dumps(d)
    if "${DS_" in text or "DS_PROMETHEUS" in text:
        problems.append("%s: uses import placeholders ${DS_...}; use the datasource variable" % base)
    for p, obj in walk(d):
        if "datasource" in obj and not p.endswith("/templating/list") and obj.get("type") != "datasource":
            ds = obj["datasource"]
            if ds == DS:
                continue
            if ds == GRAFANA_BUILTIN_DS and "/annotations" in p:
                continue
            problems.append("%s%s: datasource %r is not %r" % (base, p, ds, DS))

    # -- variables ----------------------------------------------------------
    variables = d.get("templating", {}).get("list", [])
    defined = {}
    for v in variables:
        name = v.get("name")
        if name in defined:
            problems.append("%s: variable %s defined twice" % (base, name))
        defined[name] = v
        if v.get("type") == "query":
            if v.get("datasource") != DS:
                problems.append("%s: variable %s must use datasource %r" % (base, name, DS))
            if (v.get("includeAll") or v.get("multi")) and v.get("allValue") != ".*":
                problems.append('%s: variable %s: allValue must be ".*"' % (base, name))
            q = v.get("query")
            qs = q.get("query") if isinstance(q, dict) else q
            if not isinstance(qs, str) or not qs.strip():
                problems.append("%s: variable %s has no query" % (base, name))
    for name in REQUIRED_VARS:
        if name not in defined:
            problems.append("%s: no %s variable" % (base, name))
    dsv = defined.get("datasource")
    if dsv and (dsv.get("type") != "datasource" or dsv.get("query") != "prometheus"):
        problems.append("%s: variable datasource must be type datasource, query prometheus" % base)
    if dsv and dsv.get("current") not in ({}, None):
        problems.append("%s: variable datasource must not preset a datasource (current: {})" % base)

    used_vars = set()
    for v in variables:
        if v.get("type") != "query":
            continue
        q = v.get("query")
        qs = q.get("query") if isinstance(q, dict) else (q or "")
        for m in VAR_RE.finditer(qs):
            used_vars.add(m.group(1) or m.group(2))
        inner = re.match(r"^\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\)\s*$", qs)
        if inner:
            for n in re.findall(r"(?:pki|process)_[A-Za-z0-9_]+", inner.group(1)):
                if n not in metrics_doc:
                    problems.append("%s: variable %s names %s, not in docs/metrics.md"
                                    % (base, v.get("name"), n))

    # -- panels ---------------------------------------------------------------
    panels = d.get("panels", [])
    ids = {}
    for p in all_panels(panels):
        pid = p.get("id")
        where = "%s panel %s %r" % (base, pid, p.get("title"))
        if not isinstance(pid, int):
            problems.append("%s: id must be an integer" % where)
        elif pid in ids:
            problems.append("%s: id %d also used by %r" % (where, pid, ids[pid]))
        else:
            ids[pid] = p.get("title")
        if p.get("type") == "row":
            continue
        if not p.get("title"):
            problems.append("%s: no title" % where)
        if p.get("datasource") != DS:
            problems.append("%s: panel datasource must be %r" % (where, DS))
        targets = p.get("targets") or []
        if not targets:
            problems.append("%s: no targets" % where)
        refs = set()
        for t in targets:
            if t.get("datasource") != DS:
                problems.append("%s: target %s datasource must be %r" % (where, t.get("refId"), DS))
            ref = t.get("refId")
            if not ref or ref in refs:
                problems.append("%s: missing or duplicate refId %r" % (where, ref))
            refs.add(ref)
            expr = t.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append("%s: target %s has no expr" % (where, ref))
                continue
            check_expr(expr, "%s target %s" % (where, ref), defined, metrics_doc, problems,
                       used_vars)
        fc = p.get("fieldConfig", {})
        dflt = fc.get("defaults", {})
        check_unit(dflt.get("unit"), where, problems)
        check_thresholds(dflt.get("thresholds"), where, problems)
        for o in fc.get("overrides", []):
            for prop in o.get("properties", []):
                if prop.get("id") == "unit":
                    check_unit(prop.get("value"), "%s override %r" % (where, o.get("matcher")),
                               problems)
                if prop.get("id") == "thresholds":
                    check_thresholds(prop.get("value"), "%s override %r" % (where, o.get("matcher")),
                                     problems)
        for _, obj in walk(p):
            url = obj.get("url") if isinstance(obj.get("url"), str) else None
            if url:
                for m in re.finditer(r"/d/([A-Za-z0-9_-]+)", url):
                    LINKS.append((where, m.group(1)))
                for m in VAR_RE.finditer(url):
                    used_vars.add(m.group(1) or m.group(2))

    check_grid(panels, base, problems)
    for p in panels:
        if p.get("type") == "row" and p.get("collapsed") and p.get("panels"):
            check_grid(p["panels"], "%s row %r" % (base, p.get("title")), problems)

    for name in defined:
        if name != "datasource" and name not in used_vars:
            problems.append("%s: variable %s is defined but never used" % (base, name))
    return d


LINKS = []


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ddir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "dashboards")
    mdoc = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "docs", "metrics.md")
    metrics_doc = load_metrics_doc(mdoc)
    problems = []
    files = sorted(glob.glob(os.path.join(ddir, "*.json")))
    if not files:
        problems.append("no dashboards in %s" % ddir)
    uids = {}
    dashboards = {}
    for path in files:
        d = lint_dashboard(path, metrics_doc, uids, problems)
        if d is not None:
            dashboards[os.path.basename(path)] = d
    for where, uid in LINKS:
        if uid not in uids:
            problems.append("%s: links to /d/%s, no such dashboard here" % (where, uid))
    ov = [d for d in dashboards.values() if d.get("uid") == "pki-overview"]
    if not ov:
        problems.append("no dashboard with uid pki-overview")
    else:
        found = False
        for _, obj in walk(ov[0]):
            st = obj.get("steps") if isinstance(obj.get("steps"), list) else None
            if st and {7, 14, 30} <= {s.get("value") for s in st}:
                found = True
        if not found:
            problems.append("pki-overview: no thresholds at 7, 14 and 30 days")
    for p in problems:
        print(p)
    if not problems:
        print("%d dashboards clean" % len(files))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
