#include "probe.h"

#include <stdio.h>
#include <string.h>

#include "probes/crl/crl.h"
#include "probes/file/file.h"
#include "probes/store/store.h"
#include "probes/tls/tls.h"

static const struct probe_ops *const all_probes[] = {
	&tls_probe_ops,
	&store_probe_ops,
	&file_probe_ops,
	&crl_probe_ops,
};

const struct probe_ops *probe_find(const char *name)
{
	for (size_t i = 0; i < sizeof(all_probes) / sizeof(all_probes[0]); i++)
		if (strcmp(all_probes[i]->name, name) == 0)
			return all_probes[i];
	return NULL;
}

void probe_names(char *dst, size_t len)
{
	size_t o = 0;

	dst[0] = '\0';
	for (size_t i = 0; i < sizeof(all_probes) / sizeof(all_probes[0]); i++) {
		int n = snprintf(dst + o, len - o, "%s%s", i ? ", " : "",
				 all_probes[i]->name);

		if (n < 0 || (size_t)n >= len - o)
			break;
		o += (size_t)n;
	}
}
