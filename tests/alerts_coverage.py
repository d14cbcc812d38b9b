#!/usr/bin/env python3
"""Checks that go beyond `promtool check rules` / `promtool test rules`
(Python 3 standard library only; the rule files are read as text, in the
layout alerts/pki_exporter.rules.yml uses):

  * every alert has a `severity` of warning or critical, a `summary` and a
    `description`, and a `for:`;
  * every alert has at least one promtool unit test in alerts/tests/ where
    it fires (exp_alerts with entries) and one where it does not
    (exp_alerts: []);
  * the count in PkiAlertThresholdsMissing equals the number of
    pki:threshold:* records, and every pki:threshold:* an alert reads is
    defined.

Usage: python3 tests/alerts_coverage.py [ALERTS_DIR]   (default: ../alerts)
Exit status 0 when everything holds, 1 with one line per problem.
"""

import glob
import os
import re
import sys


def rule_blocks(text):
    """[(kind, name, block_text)] for every `- alert:` / `- record:`."""
    out = []
    starts = [(m.start(), m.group(1), m.group(2))
              for m in re.finditer(r"^\s*- (alert|record):\s*(\S+)\s*$", text, re.M)]
    ends = [m.start() for m in re.finditer(r"^\s*- (?:alert|record|name):", text, re.M)]
    for pos, kind, name in starts:
        nxt = min([e for e in ends if e > pos] + [len(text)])
        out.append((kind, name, text[pos:nxt]))
    return out


def test_cases(text):
    """[(alertname, fires)] for every alert_rule_test case of a test file."""
    out = []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"^\s*alertname:\s*(\S+)\s*$", line)
        if not m:
            continue
        for j in range(i + 1, min(i + 4, len(lines))):
            e = re.match(r"^\s*exp_alerts:\s*(.*)$", lines[j])
            if e:
                rest = e.group(1).strip()
                if rest == "[]":
                    out.append((m.group(1), False))
                elif rest == "" and j + 1 < len(lines) and \
                        re.match(r"^\s*- exp_labels:", lines[j + 1]):
                    out.append((m.group(1), True))
                break
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    adir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "alerts")
    problems = []
    rule_files = sorted(glob.glob(os.path.join(adir, "*.rules.yml")))
    test_files = sorted(glob.glob(os.path.join(adir, "tests", "*.test.yml")))
    if not rule_files:
        problems.append("no *.rules.yml in %s" % adir)
    if not test_files:
        problems.append("no tests/*.test.yml in %s" % adir)

    alerts, records, reads = {}, set(), set()
    missing_count = None
    for path in rule_files:
        with open(path) as f:
            text = f.read()
        for kind, name, block in rule_blocks(text):
            if kind == "record":
                records.add(name)
                continue
            if name in alerts:
                problems.append("%s: alert %s defined twice" % (path, name))
            alerts[name] = path
            sev = re.search(r"^\s*severity:\s*(\S+)\s*$", block, re.M)
            if not sev or sev.group(1).strip("'\"") not in ("warning", "critical"):
                problems.append("%s: %s has no severity warning|critical" % (path, name))
            for key in ("summary", "description"):
                if not re.search(r"^\s*%s:" % key, block, re.M):
                    problems.append("%s: %s has no %s" % (path, name, key))
            if not re.search(r"^\s*for:\s*\S+", block, re.M):
                problems.append("%s: %s has no for:" % (path, name))
            reads.update(re.findall(r"pki:threshold:[a-z0-9_]+", block))
            if name == "PkiAlertThresholdsMissing":
                m = re.search(r"!=\s*(\d+)", block)
                missing_count = int(m.group(1)) if m else None

    thresholds = {r for r in records if r.startswith("pki:threshold:")}
    for r in sorted(reads - thresholds):
        problems.append("alerts read %s, which no record defines" % r)
    if "PkiAlertThresholdsMissing" in alerts and missing_count != len(thresholds):
        problems.append("PkiAlertThresholdsMissing expects %s thresholds, %d are defined"
                        % (missing_count, len(thresholds)))

    fires, silent = set(), set()
    for path in test_files:
        with open(path) as f:
            for name, f_ in test_cases(f.read()):
                if name not in alerts:
                    problems.append("%s: test of unknown alert %s" % (path, name))
                (fires if f_ else silent).add(name)
    for name in sorted(alerts):
        if name not in fires:
            problems.append("%s: no unit test where it fires" % name)
        if name not in silent:
            problems.append("%s: no unit test where it stays silent" % name)

    for p in problems:
        print(p)
    if not problems:
        print("%d alerts, %d thresholds: every alert tested firing and silent"
              % (len(alerts), len(thresholds)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
