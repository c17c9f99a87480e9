/* linux.seccomp: the container's filter, applied to the process VM's corral
 * itself. Every system call that reaches the host kernel from the container
 * comes from corral, so the profile limits what the container can make the
 * kernel do; calls corral answers itself never reach the kernel at all. */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>

#include "oci/oci.h"

static const struct {
	const char *name;
	enum scmp_compare op;
} ops[] = {
	{"SCMP_CMP_NE", SCMP_CMP_NE},
	{"SCMP_CMP_LT", SCMP_CMP_LT},
	{"SCMP_CMP_LE", SCMP_CMP_LE},
	{"SCMP_CMP_EQ", SCMP_CMP_EQ},
	{"SCMP_CMP_GE", SCMP_CMP_GE},
	{"SCMP_CMP_GT", SCMP_CMP_GT},
	{"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
};

/* An action name (with its errno for ERRNO and TRACE): 0 or -1 with err. */
static int action(const char *name, json_t *ret, uint32_t def_errno, uint32_t *out, char *err, size_t errn)
{
	uint32_t e = def_errno;
	if (ret) {
		if (!json_is_integer(ret) || json_integer_value(ret) < 0 || json_integer_value(ret) > 4095)
			return oci_errf(err, errn, "config.json: linux.seccomp: errnoRet must be in [0, 4095]");
		e = (uint32_t)json_integer_value(ret);
	}
	if (!strcmp(name, "SCMP_ACT_ALLOW"))
		*out = SCMP_ACT_ALLOW;
	else if (!strcmp(name, "SCMP_ACT_ERRNO"))
		*out = SCMP_ACT_ERRNO(e);
	else if (!strcmp(name, "SCMP_ACT_KILL") || !strcmp(name, "SCMP_ACT_KILL_THREAD"))
		*out = SCMP_ACT_KILL;
	else if (!strcmp(name, "SCMP_ACT_KILL_PROCESS"))
		*out = SCMP_ACT_KILL_PROCESS;
	else if (!strcmp(name, "SCMP_ACT_TRAP"))
		*out = SCMP_ACT_TRAP;
	else if (!strcmp(name, "SCMP_ACT_TRACE"))
		*out = SCMP_ACT_TRACE(e);
	else if (!strcmp(name, "SCMP_ACT_LOG"))
		*out = SCMP_ACT_LOG;
	else
		return oci_errf(err, errn, "config.json: linux.seccomp: action '%.64s' is not supported by corral-runc",
				name);
	return 0;
}

static int add_rule(scmp_filter_ctx f, uint32_t act, int nr, json_t *args, char *err, size_t errn)
{
	size_t n = json_array_size(args);
	struct scmp_arg_cmp cmp[6];
	int seen = 0, repeat = 0;
	if (n > 6)
		return oci_errf(err, errn, "config.json: linux.seccomp: more than 6 argument conditions");
	for (size_t k = 0; k < n; k++) {
		json_t *a = json_array_get(args, k);
		json_t *idx = json_object_get(a, "index"), *val = json_object_get(a, "value"),
		       *v2 = json_object_get(a, "valueTwo"), *op = json_object_get(a, "op");
		if (!json_is_object(a) || !json_is_integer(idx) || json_integer_value(idx) < 0 ||
		    json_integer_value(idx) > 5 || !json_is_integer(val) || (v2 && !json_is_integer(v2)) ||
		    !json_is_string(op))
			return oci_errf(
				err, errn,
				"config.json: linux.seccomp: an argument condition needs index (0-5), value and op");
		size_t o = 0;
		while (o < sizeof(ops) / sizeof(ops[0]) && strcmp(ops[o].name, json_string_value(op)))
			o++;
		if (o == sizeof(ops) / sizeof(ops[0]))
			return oci_errf(err, errn, "config.json: linux.seccomp: unknown op '%.64s'",
					json_string_value(op));
		unsigned i = (unsigned)json_integer_value(idx);
		repeat |= (seen >> i) & 1;
		seen |= 1 << i;
		cmp[k] = (struct scmp_arg_cmp){.arg = i,
					       .op = ops[o].op,
					       .datum_a = (scmp_datum_t)json_integer_value(val),
					       .datum_b = v2 ? (scmp_datum_t)json_integer_value(v2) : 0};
	}
	int r;
	if (!repeat) {
		r = seccomp_rule_add_array(f, act, nr, (unsigned)n, cmp);
	} else {
		/* conditions on one argument twice: one rule each, as runc does */
		r = 0;
		for (size_t k = 0; k < n && !r; k++)
			r = seccomp_rule_add_array(f, act, nr, 1, &cmp[k]);
	}
	/* -EACCES: the rule's action is the default one, nothing to add */
	if (r && r != -EACCES)
		return oci_errf(err, errn, "config.json: linux.seccomp: rule for syscall %d: %s", nr, strerror(-r));
	return 0;
}

int oci_seccomp_build(json_t *sc, int nnp, void **out, char *err, size_t errn)
{
	static const char *const keys[] = {"defaultAction", "defaultErrnoRet",	"architectures", "flags",
					   "listenerPath",  "listenerMetadata", "syscalls",	 NULL};
	*out = NULL;
	if (!json_is_object(sc))
		return oci_errf(err, errn, "config.json: linux.seccomp must be an object");
	const char *k;
	json_t *v;
	json_object_foreach(sc, k, v)
	{
		int ok = 0;
		for (const char *const *p = keys; *p; p++)
			ok |= !strcmp(*p, k);
		if (!ok)
			return oci_errf(err, errn, "config.json: linux.seccomp.%.64s is not supported by corral-runc",
					k);
	}
	json_t *lp = json_object_get(sc, "listenerPath");
	if (lp && !(json_is_string(lp) && !json_string_length(lp)))
		return oci_errf(err, errn,
				"config.json: linux.seccomp.listenerPath is not supported by corral-runc (no notify)");
	json_t *flags = json_object_get(sc, "flags");
	if (flags && json_array_size(flags))
		return oci_errf(err, errn, "config.json: linux.seccomp.flags are not supported by corral-runc");
	json_t *da = json_object_get(sc, "defaultAction");
	if (!json_is_string(da))
		return oci_errf(err, errn, "config.json: linux.seccomp.defaultAction is missing");
	uint32_t def_errno = EPERM, def;
	json_t *der = json_object_get(sc, "defaultErrnoRet");
	if (action(json_string_value(da), der, def_errno, &def, err, errn))
		return -1;
	if (der)
		def_errno = (uint32_t)json_integer_value(der);
	json_t *calls = json_object_get(sc, "syscalls");
	if (calls && (!json_is_array(calls) || json_array_size(calls) > OCI_MAX_LIST))
		return oci_errf(err, errn, "config.json: linux.seccomp.syscalls must be a list of at most %u",
				OCI_MAX_LIST);
	scmp_filter_ctx f = seccomp_init(def);
	if (!f)
		return oci_errf(err, errn, "cannot build the seccomp filter");
	/* without no_new_privs the filter goes in while corral still holds
	 * CAP_SYS_ADMIN (oci_process_exec), as runc does */
	if (!nnp)
		seccomp_attr_set(f, SCMP_FLTATR_CTL_NNP, 0);
	size_t i;
	json_t *c;
	json_array_foreach(calls, i, c)
	{
		json_t *names = json_object_get(c, "names"), *act = json_object_get(c, "action"),
		       *args = json_object_get(c, "args");
		uint32_t a;
		if (!json_is_object(c) || !json_is_array(names) || !json_is_string(act) ||
		    (args && !json_is_array(args))) {
			oci_errf(err, errn, "config.json: linux.seccomp.syscalls[%zu] needs names and action", i);
			goto fail;
		}
		if (action(json_string_value(act), json_object_get(c, "errnoRet"), def_errno, &a, err, errn))
			goto fail;
		size_t j;
		json_t *nm;
		json_array_foreach(names, j, nm)
		{
			if (!json_is_string(nm)) {
				oci_errf(err, errn, "config.json: linux.seccomp.syscalls[%zu].names must be strings",
					 i);
				goto fail;
			}
			int nr = seccomp_syscall_resolve_name(json_string_value(nm));
			if (nr == __NR_SCMP_ERROR)
				continue; /* a call this kernel or libseccomp does not know: nothing to filter */
			if (add_rule(f, a, nr, args, err, errn))
				goto fail;
		}
	}
	*out = f;
	return 0;
fail:
	seccomp_release(f);
	return -1;
}

int oci_seccomp_load(void *f, char *err, size_t errn)
{
	int r = seccomp_load(f);
	seccomp_release(f);
	return r ? oci_errf(err, errn, "cannot load the seccomp filter: %s", strerror(-r)) : 0;
}

void oci_seccomp_free(void *f)
{
	if (f)
		seccomp_release(f);
}
