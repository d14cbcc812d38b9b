/* crl_parse() alone on one CRL file: CPU seconds per parse (and, with
 * "ref", crl_parse_reference(), the d2i_X509_CRL path), for profiling the
 * CRL fast path without HTTP in the way (bench/README.md, "Where the CPU
 * goes per CRL entry").
 *
 * Build: cc -O2 -g -I. -o /tmp/crl_parse_time bench/crl_parse_time.c \
 *          build/libpkicore.a $(pkg-config --libs openssl libcurl libcares \
 *          libmicrohttpd yaml-0.1 gnutls libcrypt jansson libpcre2-8) \
 *          -lpthread -lm
 * Run:   crl_parse_time CRL ISSUER_PEM [fast|ref] [REPEATS]
 * CRL: e.g. the one bench/crl_bench.py --keep-tmp leaves in its work dir
 * (www/big.crl, ca.pem). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "probes/crl/crl_parse.h"

static double cpu_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	unsigned char *b;
	long n;
	FILE *f;
	BIO *bio;
	bool ref;
	int reps;

	if (argc < 3) {
		fprintf(stderr, "usage: crl_parse_time CRL ISSUER_PEM "
				"[fast|ref] [REPEATS]\n");
		return 2;
	}
	ref = argc > 3 && strcmp(argv[3], "ref") == 0;
	reps = argc > 4 ? atoi(argv[4]) : 3;
	f = fopen(argv[1], "rb");
	if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) <= 0)
		return 1;
	rewind(f);
	b = malloc((size_t)n);
	if (!b || fread(b, 1, (size_t)n, f) != (size_t)n)
		return 1;
	fclose(f);
	bio = BIO_new_file(argv[2], "r");
	sk_X509_push(sk, PEM_read_bio_X509(bio, NULL, NULL, NULL));
	BIO_free(bio);
	for (int i = 0; i < reps; i++) {
		struct crl_info info;
		enum crl_parse_err e;
		double t0 = cpu_now(), t1;

		e = ref ? crl_parse_reference(b, (size_t)n, sk, &info)
			: crl_parse(b, (size_t)n, sk, &info);
		t1 = cpu_now();
		printf("%s: %s, %zu entries, signature %s, index %zu bytes, "
		       "%.3f s CPU\n",
		       ref ? "crl_parse_reference" : "crl_parse",
		       crl_parse_err_str(e), info.entries,
		       info.sig == CRL_SIG_VALID ? "valid" : "not valid",
		       crl_index_bytes(&info.index), t1 - t0);
		crl_info_cleanup(&info);
	}
	sk_X509_pop_free(sk, X509_free);
	free(b);
	return 0;
}
