/* Configuration: every error names file:line:column and the reason, all
 * errors are reported, unknown keys are errors, good files load. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "testutil.h"

#include "exporter/config.h"
#include "probes/probe.h"
#include "exporter/xalloc.h"

static char dir[] = "/tmp/pki-config-test-XXXXXX";

static int setup(void **state)
{
	(void)state;
	return tu_mkdir(dir);
}

static int teardown(void **state)
{
	(void)state;
	return tu_rmdir(dir);
}

static char *write_file(const char *name, const char *text)
{
	return tu_write_file(dir, name, text);
}

/* Load `yaml` (testutil.h): the error text (caller frees) or NULL. */
static char *load(const char *yaml, struct config **cfgp)
{
	return tu_load_config(dir, yaml, cfgp);
}

static void test_good(void **state)
{
	struct config *cfg;
	char *errs;
	char *ca;

	(void)state;
	ca = write_file("ca.pem", "");
	free(ca);
	errs = load("global:\n"
		    "  scrape_timeout: 1m30s\n"
		    "  concurrency: 64\n"
		    "  dns_servers: [127.0.0.1, \"127.0.0.2:5353\", \"[::1]:53\"]\n"
		    "modules:\n"
		    "  web:\n"
		    "    prober: tls\n"
		    "    timeout: 2500ms\n"
		    "    every_address: true\n"
		    "    ip_protocol: ip6\n"
		    "  sys: { prober: tls }\n"
		    "targets:\n"
		    "  - module: web\n"
		    "    targets: [\"a.example:443\", \"[::1]:5061\", \"127.0.0.1:8443\"]\n"
		    "  - { module: sys, targets: [\"b.example:636\"] }\n",
		    &cfg);
	if (errs)
		fail_msg("unexpected errors: %s", errs);
	assert_true(cfg->global.scrape_timeout == 90);
	assert_int_equal(cfg->global.concurrency, 64);
	assert_string_equal(cfg->global.dns_csv,
			    "127.0.0.1,127.0.0.2:5353,[::1]:53");
	assert_int_equal(cfg->nmodules, 2);
	assert_true(cfg->modules[0].timeout == 2.5);
	/* a module without timeout inherits scrape_timeout */
	assert_true(cfg->modules[1].timeout == 90);
	assert_int_equal(cfg->ntargets, 4);
	/* counted at load for pki_exporter_targets */
	assert_int_equal(cfg->modules[0].ntargets, 3);
	assert_int_equal(cfg->modules[1].ntargets, 1);
	assert_string_equal(cfg->targets[1].name, "[::1]:5061");
	assert_ptr_equal(config_target(cfg, "sys", "b.example:636"),
			 &cfg->targets[3]);
	assert_null(config_target(cfg, "web", "b.example:636"));
	config_free(cfg);
}

/* Each case: the YAML and every error line expected, in order. */
static void test_errors_table(void **state)
{
	static const struct {
		const char *name;
		const char *yaml;
		const char *want[6];
	} cases[] = {
		{"unknown top-level key",
		 "modules: {}\nfoo: 1\n",
		 {":2:1: unknown top-level key 'foo'"}},
		{"bad duration and unknown key, both reported",
		 "global:\n  scrape_timeout: 10 seconds\n  bogus: 1\n",
		 {":2:19: invalid duration '10 seconds'",
		  ":3:3: global: unknown key 'bogus'"}},
		{"unknown prober",
		 "modules:\n  m:\n    prober: http\n",
		 {":3:13: module 'm': unknown prober 'http'"}},
		{"missing prober",
		 "modules:\n  m:\n    timeout: 1s\n",
		 {":3:5: module 'm': missing 'prober'"}},
		{"unknown module key",
		 "modules:\n  m:\n    prober: tls\n    every_adress: true\n",
		 {":4:5: module: unknown key 'every_adress' for prober tls"}},
		{"bad bool",
		 "modules:\n  m: { prober: tls, every_address: maybe }\n",
		 {":2:36: expected true or false, got 'maybe'"}},
		{"missing ca file",
		 "modules:\n  m:\n    prober: tls\n    tls:\n      ca_file: /nonexistent/ca.pem\n",
		 {":5:7: tls: cannot load ca_file '/nonexistent/ca.pem'"}},
		{"client cert without key",
		 "modules:\n  m:\n    prober: tls\n    tls: { client_cert: /x.pem }\n",
		 {":4:10: tls: client_cert and client_key go together"}},
		{"target errors",
		 "modules: { m: { prober: tls } }\n"
		 "targets:\n"
		 "  - module: m\n"
		 "    targets:\n"
		 "      - noport.example\n"
		 "      - \"::1:443\"\n"
		 "      - \"host:99999\"\n"
		 "      - \"[nothex]:443\"\n"
		 "      - \"ok.example:443\"\n"
		 "      - \"ok.example:443\"\n",
		 {":5:9: target 'noport.example': missing port",
		  ":6:9: target '::1:443': an IPv6 address needs brackets",
		  ":7:9: target 'host:99999': port must be 1-65535",
		  ":8:9: target '[nothex]:443': not an IPv6 address",
		  ":10:9: target 'ok.example:443' is listed twice"}},
		{"unknown module in targets",
		 "modules: { m: { prober: tls } }\n"
		 "targets:\n  - { module: n, targets: [\"a:1\"] }\n",
		 {":3:15: unknown module 'n'"}},
		{"duration too long",
		 "global: { scrape_timeout: 400y }\n",
		 {":1:27: duration '400y' is longer than 10 years"}},
		{"concurrency out of range",
		 "global: { concurrency: 0 }\n",
		 {":1:24: 0 is out of range [1, 65536]"}},
		{"bad dns server",
		 "global: { dns_servers: [dns.example] }\n",
		 {":1:25: dns_servers: 'dns.example' is not an IP address"}},
		{"bad dns server of a module",
		 "modules:\n  m: { prober: tls, dns_servers: [127.0.0.1, "
		 "ns1.corp.example] }\n",
		 {":2:46: dns_servers: 'ns1.corp.example' is not an IP "
		  "address"}},
		{"bad dns port of a module",
		 "modules:\n  m:\n    prober: tls\n    dns_servers: "
		 "\"127.0.0.1:99999\"\n",
		 {":4:18: dns_servers: '127.0.0.1:99999' is not an IP "
		  "address"}},
		{"bad allow_targets pattern",
		 "modules:\n  m:\n    prober: tls\n    allow_targets:\n"
		 "      - '[a-z.]+:443'\n      - '(unclosed:443'\n",
		 {":6:9: allow_targets: '(unclosed:443': missing closing "
		  "parenthesis at offset 13"}},
		{"duplicate key",
		 "global: {}\nglobal: {}\n",
		 {":2:1: duplicate key 'global'"}},
		{"yaml syntax",
		 "modules:\n  m: [unclosed\n",
		 {":3:1: YAML: did not find expected ',' or ']'"}},
		{"top level not a map",
		 "- a\n- b\n",
		 {":1:1: the top level must be a mapping"}},
		{"targets entry not a map",
		 "targets: [x]\n",
		 {":1:11: targets: each entry must be a mapping"}},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *errs = load(cases[i].yaml, NULL);
		const char *p;
		size_t nwant = 0, nlines = 0;

		if (!errs)
			fail_msg("case '%s': loaded without error",
				 cases[i].name);
		p = errs;
		for (; nwant < 6 && cases[i].want[nwant]; nwant++) {
			const char *hit = strstr(p, cases[i].want[nwant]);

			if (!hit)
				fail_msg("case '%s': missing '%s' in:\n%s",
					 cases[i].name, cases[i].want[nwant],
					 errs);
			/* each line names the file */
			if (strncmp(errs, dir, strlen(dir)) != 0)
				fail_msg("case '%s': no file name in '%s'",
					 cases[i].name, errs);
			p = hit;
		}
		for (p = errs; *p; p++)
			nlines += *p == '\n';
		if (nlines != nwant)
			fail_msg("case '%s': %zu errors, want %zu:\n%s",
				 cases[i].name, nlines, nwant, errs);
		free(errs);
	}
}

/* SPEC §4's `stores:` shorthand: a store module per entry, its path the
 * one target; mistakes are positioned like any other. */
static void test_stores_section(void **state)
{
	struct config *cfg;
	char *errs, *yaml;

	(void)state;
	yaml = xasprintf("modules: { m: { prober: tls } }\n"
			 "stores:\n"
			 "  - { name: root, path: %s, role: root }\n"
			 "  - { name: inter, path: %s, role: intermediate, "
			 "max_certificates: 50 }\n",
			 dir, dir);
	errs = load(yaml, &cfg);
	free(yaml);
	if (errs)
		fail_msg("unexpected: %s", errs);
	assert_int_equal(cfg->nmodules, 3);
	assert_string_equal(cfg->modules[1].name, "root");
	assert_string_equal(cfg->modules[1].ops->name, "store");
	assert_int_equal(cfg->ntargets, 2);
	assert_ptr_equal(cfg->targets[0].module, &cfg->modules[1]);
	assert_string_equal(cfg->targets[1].name, dir);
	config_free(cfg);

	errs = load("stores:\n"
		    "  - { name: a, role: root }\n"
		    "  - { name: b, path: /x, role: nope }\n"
		    "  - { name: c, path: /x, role: root, colour: red }\n"
		    "modules: { a2: { prober: tls }, c: { prober: tls } }\n",
		    NULL);
	assert_non_null(errs);
	assert_non_null(strstr(errs, ":2:5: stores: an entry needs 'name' and 'path'"));
	assert_non_null(strstr(errs, ":3:32: role must be root, intermediate or personal"));
	assert_non_null(strstr(errs, ":4:38: module: unknown key 'colour' for prober store"));
	free(errs);
}

static void test_missing_file(void **state)
{
	struct config *cfg = NULL;
	struct errbuf eb;

	(void)state;
	errbuf_init(&eb, NULL);
	assert_int_equal(config_load("/nonexistent/x.yml", &cfg, &eb), -EINVAL);
	assert_non_null(strstr(errbuf_str(&eb),
			       "/nonexistent/x.yml: cannot open: No such file"));
	errbuf_cleanup(&eb);
}

static void test_relative_paths(void **state)
{
	struct config *cfg;
	char *errs, *ca;

	(void)state;
	/* a real PEM is needed for the SSL context: make one */
	ca = xasprintf("openssl req -x509 -newkey ec -pkeyopt "
		       "ec_paramgen_curve:P-256 -nodes -keyout %s/k.pem -out "
		       "%s/rel-ca.pem -days 1 -subj /CN=t 2>/dev/null",
		       dir, dir);
	assert_int_equal(system(ca), 0);
	free(ca);
	errs = load("modules:\n  m: { prober: tls, tls: { ca_file: rel-ca.pem } }\n",
		    &cfg);
	if (errs)
		fail_msg("unexpected: %s", errs);
	config_free(cfg);
}

static void test_durations(void **state)
{
	static const struct {
		const char *s;
		double want;
		int rc;
	} cases[] = {
		{"0", 0, 0},	   {"5s", 5, 0},	{"250ms", 0.25, 0},
		{"1m30s", 90, 0},  {"1h", 3600, 0},	{"2d", 172800, 0},
		{"1w", 604800, 0}, {"", 0, -EINVAL},	{"5", 0, -EINVAL},
		{"s", 0, -EINVAL}, {"1s1m", 0, -EINVAL}, {"-1s", 0, -EINVAL},
		{"1.5s", 0, -EINVAL},
		{"11y", 0, -ERANGE}, {"400y", 0, -ERANGE}, {"3650d", 315360000, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		double v = -1;
		int rc = duration_parse(cases[i].s, &v);

		if (rc != cases[i].rc)
			fail_msg("'%s': rc %d want %d", cases[i].s, rc,
				 cases[i].rc);
		if (rc == 0 && v != cases[i].want)
			fail_msg("'%s': %g want %g", cases[i].s, v,
				 cases[i].want);
	}
}

/* allow_targets: whole-target matches only; an admitted target is parsed
 * as its prober parses configured ones; every prober takes the key. */
static void test_allow_targets(void **state)
{
	struct config *cfg = NULL;
	struct cfg_target t;
	const struct cfg_module *web, *crl, *none;
	char err[256];
	char *errs;

	(void)state;
	errs = load("modules:\n"
		    "  web:\n"
		    "    prober: tls\n"
		    "    allow_targets: ['[a-z0-9-]+\\.corp\\.example:(443|5061)',"
		    " '127\\.0\\.0\\.1:\\d+']\n"
		    "  crl: { prober: crl, allow_targets: 'http://pki\\.corp\\.example/.*' }\n"
		    "  store: { prober: store, role: root, allow_targets: [] }\n"
		    "  file: { prober: file, allow_targets: ['/etc/pki/.*'] }\n"
		    "  none: { prober: tls }\n"
		    "targets:\n"
		    "  - { module: web, targets: [\"fe1.corp.example:443\"] }\n",
		    &cfg);
	assert_null(errs);
	assert_non_null(cfg);
	web = config_module(cfg, "web");
	crl = config_module(cfg, "crl");
	none = config_module(cfg, "none");
	assert_int_equal(web->nallow, 2);
	assert_true(config_allowed(web, "fe2.corp.example:5061"));
	assert_true(config_allowed(web, "127.0.0.1:8443"));
	/* anchored at both ends: no prefix, no suffix, no substring */
	assert_false(config_allowed(web, "fe2.corp.example:4431"));
	assert_false(config_allowed(web, "evil.example/fe2.corp.example:443"));
	assert_false(config_allowed(web, "fe2.corp.example:443.evil.example:1"));
	assert_false(config_allowed(web, "127.0.0.10:1"));
	assert_false(config_allowed(none, "127.0.0.1:443"));
	assert_true(config_allowed(crl, "http://pki.corp.example/CertEnroll/CA1.crl"));
	assert_false(config_allowed(crl, "ldap://pki.corp.example/x"));
	assert_int_equal(config_module(cfg, "store")->nallow, 0);

	/* admitted and parsed */
	assert_int_equal(config_adhoc_target(web, "fe9.corp.example:5061", &t,
					     err, sizeof(err)),
			 0);
	assert_string_equal(t.name, "fe9.corp.example:5061");
	assert_ptr_equal(t.module, web);
	assert_non_null(t.tcfg);
	config_adhoc_target_free(&t);
	/* not admitted */
	assert_int_equal(config_adhoc_target(web, "www.example.com:443", &t,
					     err, sizeof(err)),
			 -EPERM);
	config_adhoc_target_free(&t);
	/* admitted by the pattern, refused by the tls target parser */
	assert_int_equal(config_adhoc_target(web, "127.0.0.1:99999", &t, err,
					     sizeof(err)),
			 -EINVAL);
	assert_true(strlen(err) > 0);
	config_adhoc_target_free(&t);
	config_free(cfg);
}

/* Fail each allocation of a load in turn: always a clean error. */
static void test_alloc_failures(void **state)
{
	char *path = write_file("oom.yml",
				"global: { dns_servers: [127.0.0.1] }\n"
				"modules: { m: { prober: tls, allow_targets: "
				"['a:\\d+', 'c:3'] } }\n"
				"targets: [ { module: m, targets: [\"a:1\", \"b:2\"] } ]\n");

	(void)state;
	for (unsigned long n = 1; n < 80; n++) {
		struct config *cfg = NULL;
		struct errbuf eb;
		int rc;

		errbuf_init(&eb, NULL);
		xalloc_fail_after(n);
		rc = config_load(path, &cfg, &eb);
		xalloc_fail_after(0);
		assert_true(rc == 0 || rc == -ENOMEM || rc == -EINVAL);
		if (rc == 0)
			assert_int_equal(cfg->ntargets, 2);
		config_free(cfg);
		errbuf_cleanup(&eb);
	}
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_errors_table),
		cmocka_unit_test(test_stores_section),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_allow_targets),
		cmocka_unit_test(test_alloc_failures),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
