#include "check.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "buf.h"
#include "config.h"
#include "csv.h"
#include "expo.h"
#include "loop.h"
#include "probes/store/store.h"
#include "probes/tls/tls_int.h"
#include "probes/x509/x509.h"
#include "scrape.h"
#include "xalloc.h"

#define CHECK_MAX_COMMENTS 24
#define CHECK_CA_NAMES_LIMIT 16384	/* Schannel truncates past 16 KiB */

enum level {
	LVL_OK = 0,
	LVL_WARN,
	LVL_FAIL,
};

static const char *const level_tag[] = {"OK", "WARN", "FAIL"};

struct comment {
	enum level level;
	char text[200];
};

struct chk_cert {
	struct x509_facts f;
	bool have;
};

struct chk_addr {
	char address[64];
	char name[256];		/* the name checked / sent as SNI */
	bool handshake_ok;
	const char *stage, *reason;
	char version[16], cipher[64];
	long verify;
	int complete;		/* -1 unknown */
	struct chk_cert *certs;
	int ncerts;
	bool cn_match, san_match;
	bool cert_requested;
	unsigned ca_names;
	size_t ca_bytes;
	char starttls_err[200];
	struct comment comments[CHECK_MAX_COMMENTS];
	int ncomments;
	enum level worst;
};

struct chk_srv {
	char host[256];
	unsigned port, priority, weight;
	bool resolved;
};

struct chk_target {
	bool seen;
	const char *name;	/* borrowed from the config */
	const char *domain, *type, *port;	/* from the CSV, or NULL */
	bool success;
	const char *stage, *reason;
	struct chk_srv srv[TLS_HOSTS_MAX];
	int nsrv;
	struct chk_addr *addrs;
	int naddrs;
	enum level worst;
};

struct check {
	pthread_mutex_t lock;
	struct chk_target *targets;	/* indexed by config target index */
	size_t ntargets;
	int64_t now;		/* wall clock, Unix seconds */
	int warn_days;
};

/* ---- collecting (runs on scrape threads) ---- */

static void collect_conn(const struct tls_conn *c, struct chk_addr *a)
{
	const struct tls_module *m = c->p->m;

	snprintf(a->address, sizeof(a->address), "%s", c->address);
	snprintf(a->name, sizeof(a->name), "%s",
		 m->server_name ? m->server_name : c->h->name);
	a->handshake_ok = c->handshake_ok;
	a->stage = probe_stage_str(c->stage);
	a->reason = probe_fail_str(c->fail);
	snprintf(a->version, sizeof(a->version), "%s", c->version);
	snprintf(a->cipher, sizeof(a->cipher), "%s", c->cipher);
	snprintf(a->starttls_err, sizeof(a->starttls_err), "%s",
		 c->starttls_err);
	a->verify = c->verify;
	a->cert_requested = c->cert_requested;
	a->ca_names = c->ca_names;
	a->ca_bytes = c->ca_names_bytes;
	a->complete = -1;
	if (!c->sent || sk_X509_num(c->sent) == 0)
		return;
	a->ncerts = sk_X509_num(c->sent);
	a->certs = xcalloc((size_t)a->ncerts, sizeof(*a->certs));
	if (!a->certs) {
		a->ncerts = 0;
		return;
	}
	for (int i = 0; i < a->ncerts; i++)
		a->certs[i].have =
			x509_facts_init(&a->certs[i].f, sk_X509_value(c->sent, i)) == 0;
	{
		X509 *leaf = sk_X509_value(c->sent, 0);
		bool ip = c->p->t->is_ip && !c->h->from_srv && !m->server_name;

		if (ip) {
			a->san_match = X509_check_ip_asc(leaf, a->name, 0) == 1;
		} else {
			a->san_match = X509_check_host(leaf, a->name, 0,
						       X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
						       NULL) == 1;
			a->cn_match = a->certs[0].have &&
				      strcasecmp(a->certs[0].f.subject_cn,
						 a->name) == 0;
		}
	}
	/* the same rule as pki_tls_chain_complete (tls_report.c) */
	a->complete = tls_chain_complete(c);
}

static void observe(void *arg, const struct probe_run *run)
{
	struct check *ck = arg;
	const struct tls_probe *p = run->priv;
	struct chk_target *t = &ck->targets[run->order];

	pthread_mutex_lock(&ck->lock);
	t->seen = true;
	t->success = run->fail == PROBE_OK;
	t->stage = probe_stage_str(run->stage);
	t->reason = probe_fail_str(run->fail);
	for (size_t i = 0; p && i < p->nhosts && t->nsrv < TLS_HOSTS_MAX; i++) {
		const struct tls_host *h = &p->hosts[i];
		struct chk_srv *s;

		if (!h->from_srv)
			continue;
		s = &t->srv[t->nsrv++];
		snprintf(s->host, sizeof(s->host), "%s", h->name);
		s->port = h->port;
		s->priority = h->priority;
		s->weight = h->weight;
		s->resolved = h->fail == PROBE_OK;
	}
	if (p && p->nconns) {
		t->addrs = xcalloc(p->nconns, sizeof(*t->addrs));
		for (size_t i = 0; t->addrs && i < p->nconns; i++) {
			const struct tls_conn *c = &p->conns[i];

			if (!c->started || c->superseded)
				continue;
			collect_conn(c, &t->addrs[t->naddrs++]);
		}
	}
	pthread_mutex_unlock(&ck->lock);
}

/* ---- judging ---- */

static void comment(struct chk_addr *a, enum level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void comment(struct chk_addr *a, enum level lvl, const char *fmt, ...)
{
	va_list ap;

	if (a->ncomments >= CHECK_MAX_COMMENTS)
		return;
	va_start(ap, fmt);
	vsnprintf(a->comments[a->ncomments].text,
		  sizeof(a->comments[a->ncomments].text), fmt, ap);
	va_end(ap);
	a->comments[a->ncomments++].level = lvl;
	if (lvl > a->worst)
		a->worst = lvl;
}

/* Whole days from now to t, rounded down (negative once past). */
static long days_until(int64_t now, int64_t t)
{
	return (long)floor((double)(t - now) / 86400.0);
}

static void judge_expiry(struct check *ck, struct chk_addr *a, int i)
{
	const struct x509_facts *f = &a->certs[i].f;
	long d = days_until(ck->now, f->not_after);
	const char *what = i == 0 ? "" : "intermediate ";

	if (i > 0 && f->self_signed)
		what = "root ";
	if (!f->dates_ok)
		comment(a, LVL_FAIL, "%s%s: unreadable validity dates", what,
			f->subject_cn);
	else if (f->not_after <= ck->now)
		comment(a, LVL_FAIL, "%s%sexpired %ld days ago", what,
			i == 0 ? "" : f->subject_cn, -d);
	else if (d < ck->warn_days)
		comment(a, LVL_FAIL, "%s%s%sexpires in %ld days", what,
			i == 0 ? "" : f->subject_cn, i == 0 ? "" : " ", d);
	else if (i == 0)
		comment(a, LVL_OK, "expires in %ld days", d);
	if (f->dates_ok && f->not_before > ck->now)
		comment(a, LVL_FAIL, "%snot valid yet", what);
}

static void judge_addr(struct check *ck, struct chk_addr *a)
{
	if (a->starttls_err[0])
		comment(a, LVL_FAIL, "STARTTLS failed: %s", a->starttls_err);
	if (!a->handshake_ok)
		comment(a, LVL_FAIL, "TLS handshake failed at %s: %s",
			a->stage, a->reason);
	if (a->ncerts == 0)
		return;
	if (a->cn_match)
		comment(a, LVL_OK, "Common Name match found");
	if (a->san_match)
		comment(a, LVL_OK, "FQDN is in SAN list");
	if (!a->cn_match && !a->san_match)
		comment(a, LVL_FAIL, "%s matches neither the Common Name nor the SAN list",
			a->name);
	for (int i = 0; i < a->ncerts; i++)
		if (a->certs[i].have)
			judge_expiry(ck, a, i);
	if (a->certs[0].have) {
		const struct x509_facts *f = &a->certs[0].f;

		if (!f->server_auth)
			comment(a, LVL_FAIL, "no Server Authentication EKU");
		if (!f->cdp[0])
			comment(a, LVL_WARN, "no CRL distribution point");
		if (f->weak_key)
			comment(a, LVL_FAIL, "weak key (%s %d bits)", f->key_type,
				f->key_bits);
	}
	for (int i = 0; i < a->ncerts; i++) {
		const struct x509_facts *f = &a->certs[i].f;

		if (a->certs[i].have && f->weak_signature && !f->self_signed)
			comment(a, LVL_FAIL, "weak signature (%s)%s%s", f->sig_alg,
				i ? " on " : "", i ? f->subject_cn : "");
	}
	if (a->complete == 0)
		comment(a, LVL_FAIL,
			"server did not send its intermediate certificate");
	if (a->verify == X509_V_OK)
		comment(a, LVL_OK, "chain verified");
	else if (a->verify == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
		 a->verify == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
		 (a->complete == 1 &&
		  a->verify == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY))
		comment(a, LVL_FAIL, "untrusted root");
	else if (a->verify != X509_V_ERR_CERT_HAS_EXPIRED &&
		 a->complete != 0)
		comment(a, LVL_FAIL, "chain does not verify: %s",
			X509_verify_cert_error_string(a->verify));
	if (a->cert_requested) {
		comment(a, a->ca_bytes > CHECK_CA_NAMES_LIMIT ? LVL_FAIL : LVL_OK,
			"server requests a client certificate (%u CA names, %zu bytes)",
			a->ca_names, a->ca_bytes);
	}
}

static void judge(struct check *ck, struct chk_target *t)
{
	if (!t->seen) {
		t->worst = LVL_FAIL;
		return;
	}
	t->worst = t->success ? LVL_OK : LVL_FAIL;
	for (int i = 0; i < t->naddrs; i++) {
		judge_addr(ck, &t->addrs[i]);
		if (t->addrs[i].worst > t->worst)
			t->worst = t->addrs[i].worst;
	}
}

/* ---- rendering ---- */

static void fmt_time(int64_t t, char *dst, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(dst, len, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static const char *result_str(enum level l)
{
	return l == LVL_FAIL ? "PROBLEM" : l == LVL_WARN ? "WARN" : "OK";
}

static void render_text(struct check *ck, FILE *out)
{
	size_t problems = 0, n = 0;

	for (size_t i = 0; i < ck->ntargets; i++) {
		struct chk_target *t = &ck->targets[i];

		if (!t->name)
			continue;
		n++;
		problems += t->worst == LVL_FAIL;
		fprintf(out, "== %s", t->name);
		if (t->domain)
			fprintf(out, " (%s %s)", t->type, t->domain);
		fputc('\n', out);
		for (int s = 0; s < t->nsrv; s++)
			fprintf(out, "   SRV %s:%u priority %u weight %u%s\n",
				t->srv[s].host, t->srv[s].port, t->srv[s].priority,
				t->srv[s].weight,
				t->srv[s].resolved ? "" : " (does not resolve)");
		if (!t->success && t->naddrs == 0)
			fprintf(out, "   FAIL probe failed at %s: %s\n",
				t->seen ? t->stage : "queued",
				t->seen ? t->reason : "not run");
		for (int k = 0; k < t->naddrs; k++) {
			struct chk_addr *a = &t->addrs[k];

			fprintf(out, "-- %s (%s)\n", a->address, a->name);
			if (a->handshake_ok)
				fprintf(out, "   %s %s\n", a->version, a->cipher);
			for (int c = 0; c < a->ncerts; c++) {
				const struct x509_facts *f = &a->certs[c].f;
				char na[32];

				if (!a->certs[c].have)
					continue;
				fmt_time(f->not_after, na, sizeof(na));
				fprintf(out,
					"   [%d] %s  issuer %s  serial %s\n"
					"       not after %s (%ld days)  %s  %s %d\n",
					c, f->subject_cn, f->issuer_cn, f->serial,
					na, days_until(ck->now, f->not_after),
					f->sig_alg, f->key_type, f->key_bits);
				if (c == 0 && f->sans[0])
					fprintf(out, "       SANs %s\n", f->sans);
				if (c == 0 && f->cdp[0])
					fprintf(out, "       CDP %s\n", f->cdp);
			}
			for (int m = 0; m < a->ncomments; m++)
				fprintf(out, "   %-4s %s\n",
					level_tag[a->comments[m].level],
					a->comments[m].text);
		}
		fprintf(out, "=> %s\n\n", result_str(t->worst));
	}
	fprintf(out, "%zu endpoint%s checked, %zu with problems\n", n,
		n == 1 ? "" : "s", problems);
}

static void csv_field(FILE *out, const char *s, bool last)
{
	if (strpbrk(s, ",\"\r\n")) {
		fputc('"', out);
		for (; *s; s++) {
			if (*s == '"')
				fputc('"', out);
			fputc(*s, out);
		}
		fputc('"', out);
	} else {
		fputs(s, out);
	}
	fputs(last ? "\r\n" : ",", out);
}

static void render_csv(struct check *ck, FILE *out)
{
	fputs("Domain,Type,Port,Target,Address,Subject,Issuer,Serial,NotAfter,"
	      "DaysLeft,Result,Comments\r\n",
	      out);
	for (size_t i = 0; i < ck->ntargets; i++) {
		struct chk_target *t = &ck->targets[i];

		if (!t->name)
			continue;
		for (int k = 0; k < (t->naddrs ? t->naddrs : 1); k++) {
			struct chk_addr *a = t->naddrs ? &t->addrs[k] : NULL;
			const struct x509_facts *f =
				a && a->ncerts && a->certs[0].have ? &a->certs[0].f
								   : NULL;
			char na[32] = "", days[24] = "";
			struct buf cm;

			buf_init(&cm, 8192);
			if (f) {
				fmt_time(f->not_after, na, sizeof(na));
				snprintf(days, sizeof(days), "%ld",
					 days_until(ck->now, f->not_after));
			}
			for (int m = 0; a && m < a->ncomments; m++)
				buf_printf(&cm, "%s%s", m ? "; " : "",
					   a->comments[m].text);
			if (!a)
				buf_printf(&cm, "probe failed at %s: %s",
					   t->seen ? t->stage : "queued",
					   t->seen ? t->reason : "not run");
			csv_field(out, t->domain ? t->domain : "", false);
			csv_field(out, t->type ? t->type : "", false);
			csv_field(out, t->port ? t->port : "", false);
			csv_field(out, t->name, false);
			csv_field(out, a ? a->address : "", false);
			csv_field(out, f ? f->subject_cn : "", false);
			csv_field(out, f ? f->issuer_cn : "", false);
			csv_field(out, f ? f->serial : "", false);
			csv_field(out, na, false);
			csv_field(out, days, false);
			csv_field(out, result_str(a ? a->worst : t->worst), false);
			csv_field(out, cm.data ? cm.data : "", true);
			buf_cleanup(&cm);
		}
	}
}

static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void render_json(struct check *ck, FILE *out)
{
	bool first = true;

	fputs("[", out);
	for (size_t i = 0; i < ck->ntargets; i++) {
		struct chk_target *t = &ck->targets[i];

		if (!t->name)
			continue;
		fputs(first ? "\n  {\"target\": " : ",\n  {\"target\": ", out);
		first = false;
		json_str(out, t->name);
		if (t->domain) {
			fputs(", \"domain\": ", out);
			json_str(out, t->domain);
			fputs(", \"type\": ", out);
			json_str(out, t->type);
		}
		fprintf(out, ", \"result\": \"%s\", \"success\": %s",
			result_str(t->worst), t->success ? "true" : "false");
		if (!t->success) {
			fputs(", \"stage\": ", out);
			json_str(out, t->seen ? t->stage : "queued");
			fputs(", \"reason\": ", out);
			json_str(out, t->seen ? t->reason : "not run");
		}
		fputs(", \"srv\": [", out);
		for (int s = 0; s < t->nsrv; s++) {
			fprintf(out, "%s{\"host\": ", s ? ", " : "");
			json_str(out, t->srv[s].host);
			fprintf(out, ", \"port\": %u, \"priority\": %u, \"weight\": %u}",
				t->srv[s].port, t->srv[s].priority,
				t->srv[s].weight);
		}
		fputs("], \"addresses\": [", out);
		for (int k = 0; k < t->naddrs; k++) {
			struct chk_addr *a = &t->addrs[k];

			fputs(k ? ", {\"address\": " : "{\"address\": ", out);
			json_str(out, a->address);
			fputs(", \"name\": ", out);
			json_str(out, a->name);
			fprintf(out, ", \"handshake\": %s, \"result\": \"%s\"",
				a->handshake_ok ? "true" : "false",
				result_str(a->worst));
			fputs(", \"certificates\": [", out);
			for (int c = 0; c < a->ncerts; c++) {
				const struct x509_facts *f = &a->certs[c].f;

				if (!a->certs[c].have)
					continue;
				fputs(c ? ", {\"subject_cn\": " : "{\"subject_cn\": ",
				      out);
				json_str(out, f->subject_cn);
				fputs(", \"issuer_cn\": ", out);
				json_str(out, f->issuer_cn);
				fputs(", \"serial\": ", out);
				json_str(out, f->serial);
				fprintf(out,
					", \"not_after\": %lld, \"days_left\": %ld, "
					"\"sig_alg\": ",
					(long long)f->not_after,
					days_until(ck->now, f->not_after));
				json_str(out, f->sig_alg);
				fputs(", \"sha256\": ", out);
				json_str(out, f->sha256);
				fputs("}", out);
			}
			fputs("], \"comments\": [", out);
			for (int m = 0; m < a->ncomments; m++) {
				fprintf(out, "%s{\"level\": \"%s\", \"text\": ",
					m ? ", " : "",
					level_tag[a->comments[m].level]);
				json_str(out, a->comments[m].text);
				fputs("}", out);
			}
			fputs("]}", out);
		}
		fputs("]}", out);
	}
	fputs(first ? "]\n" : "\n]\n", out);
}

/* ---- the command ---- */

static void usage(FILE *f)
{
	fputs("usage: pki_exporter check [options] TARGET...\n"
	      "       pki_exporter check [options] --csv FILE\n"
	      "\n"
	      "Probe TLS endpoints once and print a report. TARGET is host:port,\n"
	      "[v6]:port, an SRV name (_sip._tls.example.com), or a bare domain\n"
	      "(checked as a federation partner: _sipfederationtls._tcp.DOMAIN).\n"
	      "\n"
	      "  --csv FILE           partner list: Domain,Type,Port with types\n"
	      "                       FED, SIP, SIPINT, DIR\n"
	      "  --format FORMAT      text (default), csv or json\n"
	      "  --config.file FILE   use the modules of this configuration\n"
	      "  --module NAME        the module to probe with (default: a tls\n"
	      "                       module checking every address)\n"
	      "  --ca-file FILE       trust anchors for the default module\n"
	      "  --dns-server IP      resolver for the default module\n"
	      "  --warn-days N        expiry closer than N days is a problem "
	      "(default 30)\n"
	      "  --timeout DURATION   per endpoint (default 10s)\n"
	      "\n"
	      "       pki_exporter check --store DIR|BUNDLE --role "
	      "root|intermediate|personal\n"
	      "\n"
	      "Lists the misplaced certificates of a trust store (not self-signed\n"
	      "in a root store, self-signed among intermediates, private keys,\n"
	      "duplicates, expired, not a CA) and its size against the Windows\n"
	      "limits (100 roots, 16 KiB of CA names).\n"
	      "\n"
	      "Exit status: 0 all fine, 1 some endpoint has a problem, 2 usage.\n",
	      f);
}

struct check_opts {
	const char *config_file, *module, *csv, *format, *ca_file, *dns;
	const char *store, *role;
	const char *timeout;
	int warn_days;
};

/* getopt_long: `--format json` and `--format=json` alike, as the main
 * flags; "+" stops at the first target. */
static int parse_opts(int argc, char **argv, struct check_opts *o, int *first)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"csv", required_argument, NULL, 'c'},
		{"format", required_argument, NULL, 'f'},
		{"config.file", required_argument, NULL, 'C'},
		{"module", required_argument, NULL, 'm'},
		{"ca-file", required_argument, NULL, 'a'},
		{"dns-server", required_argument, NULL, 'd'},
		{"timeout", required_argument, NULL, 't'},
		{"store", required_argument, NULL, 's'},
		{"role", required_argument, NULL, 'r'},
		{"warn-days", required_argument, NULL, 'w'},
		{NULL, 0, NULL, 0},
	};
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		char *end;
		long v;

		switch (c) {
		case 'h':
			usage(stdout);
			exit(0);
		case 'c':
			o->csv = optarg;
			break;
		case 'f':
			o->format = optarg;
			break;
		case 'C':
			o->config_file = optarg;
			break;
		case 'm':
			o->module = optarg;
			break;
		case 'a':
			o->ca_file = optarg;
			break;
		case 'd':
			o->dns = optarg;
			break;
		case 't':
			o->timeout = optarg;
			break;
		case 's':
			o->store = optarg;
			break;
		case 'r':
			o->role = optarg;
			break;
		case 'w':
			v = strtol(optarg, &end, 10);
			if (!*optarg || *end || v < 0 || v > 36500) {
				fprintf(stderr, "check: --warn-days must be a "
						"number of days (0-36500), not "
						"'%s'\n",
					optarg);
				return -EINVAL;
			}
			o->warn_days = (int)v;
			break;
		case ':':
			fprintf(stderr, "check: option '%s' needs a value\n",
				argv[optind - 1]);
			return -EINVAL;
		default:
			fprintf(stderr, "check: unknown option '%s'\n",
				argv[optind - 1]);
			return -EINVAL;
		}
	}
	*first = optind;
	return 0;
}

/* The default module, written as YAML so that it goes through the same
 * validation as a configuration file. */
static int default_config(const struct check_opts *o, struct config **cfg)
{
	struct errbuf eb;
	struct buf y;
	int rc;

	buf_init(&y, 64 * 1024);
	buf_printf(&y, "global: { scrape_timeout: 1h, concurrency: 64 }\n"
		       "modules:\n  check:\n    prober: tls\n"
		       "    every_address: true\n    timeout: '%s'\n",
		   o->timeout ? o->timeout : "10s");
	if (o->dns)
		buf_printf(&y, "    dns_servers: ['%s']\n", o->dns);
	if (o->ca_file)
		buf_printf(&y, "    tls: { ca_file: '%s' }\n", o->ca_file);
	errbuf_init(&eb, NULL);
	rc = y.err ? y.err : config_load_text("check options", y.data, y.len,
					      cfg, &eb);
	if (rc)
		fputs(errbuf_str(&eb), stderr);
	errbuf_cleanup(&eb);
	buf_cleanup(&y);
	return rc;
}

static void check_free(struct check *ck)
{
	for (size_t i = 0; i < ck->ntargets; i++) {
		struct chk_target *t = &ck->targets[i];

		for (int k = 0; k < t->naddrs; k++) {
			for (int c = 0; c < t->addrs[k].ncerts; c++)
				if (t->addrs[k].certs[c].have)
					x509_facts_cleanup(&t->addrs[k].certs[c].f);
			xfree(t->addrs[k].certs);
		}
		xfree(t->addrs);
	}
	xfree(ck->targets);
	pthread_mutex_destroy(&ck->lock);
}

int check_main(int argc, char **argv)
{
	struct check_opts o = {.warn_days = 30};
	struct config *cfg = NULL;
	struct partner_row *rows = NULL;
	size_t nrows = 0, first_new, *idx = NULL, n;
	struct check ck;
	struct probe_observer obs = {observe, &ck};
	struct scrape_stats st;
	struct expo_set set;
	const char *module;
	int first, rc = 2;
	double budget = 0;

	memset(&ck, 0, sizeof(ck));
	pthread_mutex_init(&ck.lock, NULL);
	if (parse_opts(argc, argv, &o, &first))
		goto out;
	if (o.format && strcmp(o.format, "text") != 0 &&
	    strcmp(o.format, "csv") != 0 && strcmp(o.format, "json") != 0) {
		fprintf(stderr, "check: --format must be text, csv or json\n");
		goto out;
	}
	if (o.store) {
		if (!o.role) {
			fprintf(stderr, "check: --store needs --role root, "
					"intermediate or personal\n");
			goto out;
		}
		rc = store_check_report(o.store, o.role, stdout);
		goto out;
	}
	if (first >= argc && !o.csv) {
		usage(stderr);
		goto out;
	}
	if (o.config_file) {
		struct errbuf eb;

		errbuf_init(&eb, NULL);
		if (config_load(o.config_file, &cfg, &eb)) {
			fputs(errbuf_str(&eb), stderr);
			errbuf_cleanup(&eb);
			goto out;
		}
		errbuf_cleanup(&eb);
		if (!o.module) {
			fprintf(stderr, "check: --config.file needs --module\n");
			goto out;
		}
	} else if (default_config(&o, &cfg)) {
		goto out;
	}
	module = o.module ? o.module : "check";
	if (!config_module(cfg, module) ||
	    strcmp(config_module(cfg, module)->ops->name, "tls") != 0) {
		fprintf(stderr, "check: no tls module '%s'\n", module);
		goto out;
	}

	/* the targets: arguments, then the CSV rows */
	first_new = cfg->ntargets;
	for (int i = first; i < argc; i++) {
		char err[256], *name;
		const char *a = argv[i];

		name = strchr(a, ':') || a[0] == '_'
			       ? xstrdup(a)
			       : xasprintf("_sipfederationtls._tcp.%s", a);
		if (!name || config_add_target(cfg, module, name, err,
					       sizeof(err))) {
			fprintf(stderr, "check: %s: %s\n", a,
				name ? err : "out of memory");
			xfree(name);
			goto out;
		}
		xfree(name);
	}
	if (o.csv) {
		struct buf skipped;
		unsigned nskipped;

		buf_init(&skipped, 64 * 1024);
		if (partners_load(o.csv, &rows, &nrows, &skipped, &nskipped)) {
			fputs(skipped.data ? skipped.data : "", stderr);
			buf_cleanup(&skipped);
			goto out;
		}
		if (skipped.len)
			fprintf(stderr, "skipped:\n%s", skipped.data);
		buf_cleanup(&skipped);
		for (size_t i = 0; i < nrows; i++) {
			char err[256];

			if (config_add_target(cfg, module, rows[i].target, err,
					      sizeof(err)))
				fprintf(stderr, "%s:%u: %s\n", o.csv,
					rows[i].line, err);
		}
	}
	n = cfg->ntargets - first_new;
	ck.ntargets = cfg->ntargets;
	ck.targets = xcalloc(ck.ntargets ? ck.ntargets : 1, sizeof(*ck.targets));
	idx = xcalloc(n ? n : 1, sizeof(*idx));
	if (!ck.targets || !idx)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct chk_target *t = &ck.targets[first_new + i];

		idx[i] = first_new + i;
		t->name = cfg->targets[first_new + i].name;
	}
	/* CSV columns for the report */
	for (size_t r = 0; r < nrows; r++)
		for (size_t i = first_new; i < cfg->ntargets; i++)
			if (!ck.targets[i].domain &&
			    strcmp(cfg->targets[i].name, rows[r].target) == 0) {
				ck.targets[i].type = partner_type_str(rows[r].type);
				ck.targets[i].domain = rows[r].domain;
				ck.targets[i].port = rows[r].port;
				break;
			}

	ck.now = (int64_t)time(NULL);
	ck.warn_days = o.warn_days;
	budget = config_module(cfg, module)->timeout + 5;
	expo_set_init(&set, (size_t)256 * 1024 * 1024);
	rc = scrape_run(cfg, idx, n, loop_now() + (int64_t)(budget * 1e9), &set,
			&st, &obs);
	expo_set_cleanup(&set);
	if (rc) {
		fprintf(stderr, "check: %s\n", strerror(-rc));
		rc = 2;
		goto out;
	}
	rc = 0;
	for (size_t i = first_new; i < cfg->ntargets; i++) {
		judge(&ck, &ck.targets[i]);
		if (ck.targets[i].worst == LVL_FAIL)
			rc = 1;
	}
	if (!o.format || strcmp(o.format, "text") == 0)
		render_text(&ck, stdout);
	else if (strcmp(o.format, "csv") == 0)
		render_csv(&ck, stdout);
	else
		render_json(&ck, stdout);
out:
	check_free(&ck);
	xfree(idx);
	partner_rows_free(rows, nrows);
	config_free(cfg);
	return rc;
}

/* ---- /status: the same judgement as an HTML page ---- */

static void html_esc(struct buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<':
			buf_puts(b, "&lt;");
			break;
		case '>':
			buf_puts(b, "&gt;");
			break;
		case '&':
			buf_puts(b, "&amp;");
			break;
		case '"':
			buf_puts(b, "&quot;");
			break;
		case '\'':
			buf_puts(b, "&#39;");
			break;
		default:
			buf_putc(b, *s);
		}
	}
}

struct status_row {
	const struct chk_target *t;
	const struct chk_addr *a;	/* NULL: the probe never reached one */
	enum level worst;
	int64_t not_after;		/* leaf; INT64_MAX when unknown */
};

/* failures first, then the soonest expiry */
static int cmp_row(const void *x, const void *y)
{
	const struct status_row *a = x, *b = y;

	if (a->worst != b->worst)
		return a->worst > b->worst ? -1 : 1;
	if (a->not_after != b->not_after)
		return a->not_after < b->not_after ? -1 : 1;
	return strcmp(a->t->name, b->t->name);
}

char *check_status_html(const struct config *cfg, double budget, size_t *len)
{
	struct check ck;
	struct probe_observer obs = {observe, &ck};
	struct status_row *rows = NULL;
	size_t *idx, n = 0, nrows = 0, cap = 0;
	struct scrape_stats st;
	struct expo_set set;
	struct buf b;
	char *page = NULL;

	memset(&ck, 0, sizeof(ck));
	pthread_mutex_init(&ck.lock, NULL);
	ck.now = (int64_t)time(NULL);
	ck.warn_days = 30;
	ck.ntargets = cfg->ntargets;
	ck.targets = xcalloc(cfg->ntargets ? cfg->ntargets : 1,
			     sizeof(*ck.targets));
	idx = xcalloc(cfg->ntargets ? cfg->ntargets : 1, sizeof(*idx));
	if (!ck.targets || !idx)
		goto out;
	for (size_t i = 0; i < cfg->ntargets; i++) {
		if (strcmp(cfg->targets[i].module->ops->name, "tls") != 0)
			continue;
		ck.targets[i].name = cfg->targets[i].name;
		idx[n++] = i;
	}
	expo_set_init(&set, (size_t)256 * 1024 * 1024);
	scrape_run(cfg, idx, n, loop_now() + (int64_t)(budget * 1e9), &set, &st,
		   &obs);
	expo_set_cleanup(&set);

	for (size_t i = 0; i < cfg->ntargets; i++) {
		struct chk_target *t = &ck.targets[i];

		if (!t->name)
			continue;
		judge(&ck, t);
		for (int k = 0; k < (t->naddrs ? t->naddrs : 1); k++) {
			struct status_row *r;
			const struct chk_addr *a = t->naddrs ? &t->addrs[k] : NULL;

			if (xgrow((void **)&rows, &cap, nrows + 1, sizeof(*rows)))
				goto out;
			r = &rows[nrows++];
			r->t = t;
			r->a = a;
			r->worst = a ? a->worst : t->worst;
			r->not_after = a && a->ncerts && a->certs[0].have
					       ? a->certs[0].f.not_after
					       : INT64_MAX;
		}
	}
	if (nrows)
		qsort(rows, nrows, sizeof(*rows), cmp_row);

	buf_init(&b, (size_t)64 * 1024 * 1024);
	buf_puts(&b,
		 "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
		 "<title>pki_exporter status</title><style>"
		 "body{font-family:sans-serif;margin:1.5em}"
		 "table{border-collapse:collapse}"
		 "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;"
		 "vertical-align:top}"
		 "tr.PROBLEM td.result{background:#f8d0d0}"
		 "tr.WARN td.result{background:#fbeebb}"
		 "tr.OK td.result{background:#d4f0d4}"
		 "ul{margin:0;padding-left:1.1em}</style></head><body>"
		 "<h1>pki_exporter status</h1>\n");
	buf_printf(&b, "<p>%zu endpoint rows, probed now; failures first, then "
		       "the soonest expiry.</p>\n",
		   nrows);
	buf_puts(&b, "<table id=\"status\"><thead><tr><th>Result</th>"
		     "<th>Target</th><th>Address</th><th>Certificate</th>"
		     "<th>Issuer</th><th>Expires</th><th>Days left</th>"
		     "<th>Comments</th></tr></thead><tbody>\n");
	for (size_t i = 0; i < nrows; i++) {
		const struct status_row *r = &rows[i];
		const struct x509_facts *f = r->a && r->a->ncerts &&
							     r->a->certs[0].have
						     ? &r->a->certs[0].f
						     : NULL;
		char na[32] = "";

		buf_printf(&b, "<tr class=\"%s\"><td class=\"result\">%s</td><td>",
			   result_str(r->worst), result_str(r->worst));
		html_esc(&b, r->t->name);
		buf_puts(&b, "</td><td>");
		html_esc(&b, r->a ? r->a->address : "");
		buf_puts(&b, "</td><td>");
		html_esc(&b, f ? f->subject_cn : "");
		buf_puts(&b, "</td><td>");
		html_esc(&b, f ? f->issuer_cn : "");
		if (f)
			fmt_time(f->not_after, na, sizeof(na));
		buf_printf(&b, "</td><td>%s</td><td class=\"days\">", na);
		if (f)
			buf_printf(&b, "%ld", days_until(ck.now, f->not_after));
		buf_puts(&b, "</td><td><ul>");
		if (!r->a)
			buf_printf(&b, "<li>probe failed at %s: %s</li>",
				   r->t->seen ? r->t->stage : "queued",
				   r->t->seen ? r->t->reason : "not run");
		for (int m = 0; r->a && m < r->a->ncomments; m++) {
			buf_printf(&b, "<li class=\"%s\">",
				   level_tag[r->a->comments[m].level]);
			html_esc(&b, r->a->comments[m].text);
			buf_puts(&b, "</li>");
		}
		buf_puts(&b, "</ul></td></tr>\n");
	}
	buf_puts(&b, "</tbody></table></body></html>\n");
	page = buf_steal(&b, len);
out:
	xfree(rows);
	xfree(idx);
	check_free(&ck);
	return page;
}
