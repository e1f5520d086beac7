/* fuzz_policy.c: libFuzzer harness for podmeta's egress annotations: list parser and verdicts (policy.c) */
/* fuzz-sources: podmeta/policy.c */
/* fuzz-libs: jansson */
/* fuzz-options: -max_len=8192 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "podmeta.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define CHECK(x)	do { if (!(x)) { fprintf(stderr, "%s:%d: %s\n", \
			    __FILE__, __LINE__, #x); abort(); } } while (0)

static const char *const members[] = { "mode", "verdict", "rule", "from",
    "reason" };

/* The answer is one JSON object with exactly the five members, each a string or null. */
static void
fuzz_answer(const struct policy_result *r, const char *allow_text)
{
	json_t		*o, *v;
	char		*s;
	size_t		 i;

	CHECK((s = policy_result_json(r)) != NULL);
	CHECK((o = json_loads(s, 0, NULL)) != NULL);
	CHECK(json_is_object(o) && json_object_size(o) == 5);
	for (i = 0; i < 5; i++) {
		v = json_object_get(o, members[i]);
		CHECK(v != NULL && (json_is_string(v) || json_is_null(v)));
	}
	/* a rule is an entry as written, so it is in the annotation's text */
	v = json_object_get(o, "rule");
	if (json_is_string(v))
		CHECK(strstr(allow_text, json_string_value(v)) != NULL);
	CHECK(json_is_string(json_object_get(o, "verdict")));
	json_decref(o);
	free(s);
}

/*
 * Input: the allow annotation, a NUL, the mode annotation, a NUL, then
 * "host port sni" for a lookup.  The annotations go through the same
 * reader as a watched pod's; the verdict must be well formed, and a
 * list that parses must parse again from its own rule texts.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char			*in, *allow, *mode = "", *req = "";
	char			 host[512] = "", sni[512] = "", err[256];
	unsigned		 port = 0;
	struct pod		 pod;
	struct policy_result	 r;
	struct policy_list	*pl;
	json_t			*meta;
	size_t			 n;

	if ((in = malloc(size + 2)) == NULL)
		return 0;
	memcpy(in, data, size);
	in[size] = in[size + 1] = '\0';
	allow = in;
	if ((n = strlen(allow)) < size) {
		mode = allow + n + 1;
		if (n + 1 + strlen(mode) < size)
			req = mode + strlen(mode) + 1;
	}
	(void)sscanf(req, "%511s %u %511s", host, &port, sni);

	meta = json_pack("{s:{s:s?, s:s?}}", "annotations",
	    POLICY_ANNOT_ALLOW, allow,
	    POLICY_ANNOT_MODE, *mode != '\0' ? mode : NULL);
	if (meta == NULL) {
		/* not UTF-8: jansson refuses it, as it would in a watch */
		free(in);
		return 0;
	}
	memset(&pod, 0, sizeof(pod));
	pod.p_namespace = "ns";
	pod.p_name = "p";
	(void)policy_spec_read(meta, &pod.p_policy);
	CHECK(pod.p_policy.ps_has_allow == (pod.p_policy.ps_allow != NULL));
	policy_decide(NULL, &pod, host, port, sni, &r);
	CHECK(r.pr_mode != POLICY_MODE_NONE);
	fuzz_answer(&r, allow);
	/* the parser's own verdict on the text, twice the same */
	if (policy_list_parse(allow, &pl, err, sizeof(err)) == 0) {
		CHECK(pod.p_policy.ps_has_allow);
		policy_list_free(pl);
	} else
		CHECK(!pod.p_policy.ps_has_allow && err[0] != '\0');
	policy_spec_clear(&pod.p_policy);
	json_decref(meta);
	free(in);
	return 0;
}
