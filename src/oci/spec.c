/* A bundle's config.json (OCI runtime-spec 1.x), parsed and checked in full
 * before the runtime acts on it: every type, range and list length. What
 * corral cannot honour is refused by name, never dropped. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci/oci.h"

#define ERR(...) oci_errf(err, errn, __VA_ARGS__)

int oci_errf(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Keys an object may have: anything else is refused by name. */
static int known_keys(json_t *o, const char *where, const char *const *keys, char *err, size_t errn)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		int ok = 0;
		for (const char *const *p = keys; *p; p++)
			ok |= !strcmp(*p, k);
		if (!ok)
			return ERR("config.json: %s%s%s is not supported by corral-runc", where, *where ? "." : "", k);
	}
	return 0;
}

static int get_obj(json_t *o, const char *key, const char *where, json_t **out, char *err, size_t errn)
{
	json_t *v = json_object_get(o, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return ERR("config.json: %s.%s must be an object", where, key);
	*out = v;
	return 0;
}

static int get_str(json_t *o, const char *key, const char *where, const char **out, int required, char *err,
		   size_t errn)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		if (required)
			return ERR("config.json: %s.%s is missing", where, key);
		return 0;
	}
	if (!json_is_string(v))
		return ERR("config.json: %s.%s must be a string", where, key);
	const char *s = json_string_value(v);
	if (strlen(s) != json_string_length(v) || json_string_length(v) > OCI_MAX_STR)
		return ERR("config.json: %s.%s: a NUL byte or longer than %u bytes", where, key, OCI_MAX_STR);
	*out = s;
	return 0;
}

static int get_bool(json_t *o, const char *key, const char *where, int *out, char *err, size_t errn)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return ERR("config.json: %s.%s must be true or false", where, key);
	*out = json_is_true(v);
	return 0;
}

/* An integer in [lo, hi]; *has set when present. */
static int get_int(json_t *o, const char *key, const char *where, long long lo, long long hi, long long *out, int *has,
		   char *err, size_t errn)
{
	json_t *v = json_object_get(o, key);
	if (has)
		*has = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return ERR("config.json: %s.%s must be an integer", where, key);
	long long x = json_integer_value(v);
	if (x < lo || x > hi)
		return ERR("config.json: %s.%s = %lld is out of range [%lld, %lld]", where, key, x, lo, hi);
	*out = x;
	if (has)
		*has = 1;
	return 0;
}

/* A list of strings, NULL-terminated (allocated; the strings stay the JSON's). */
static int get_strv(json_t *o, const char *key, const char *where, const char ***out, size_t *n, char *err, size_t errn)
{
	json_t *v = json_object_get(o, key);
	*out = NULL;
	if (n)
		*n = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return ERR("config.json: %s.%s must be a list of strings", where, key);
	size_t len = json_array_size(v);
	if (len > OCI_MAX_LIST)
		return ERR("config.json: %s.%s has %zu entries (at most %u)", where, key, len, OCI_MAX_LIST);
	const char **a = calloc(len + 1, sizeof(*a));
	if (!a)
		return ERR("out of memory");
	for (size_t k = 0; k < len; k++) {
		json_t *e = json_array_get(v, k);
		if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e) ||
		    json_string_length(e) > OCI_MAX_STR) {
			free(a);
			return ERR("config.json: %s.%s[%zu] must be a string without NUL bytes", where, key, k);
		}
		a[k] = json_string_value(e);
	}
	*out = a;
	if (n)
		*n = len;
	return 0;
}

static int get_list(json_t *o, const char *key, const char *where, json_t **out, size_t *n, char *err, size_t errn)
{
	json_t *v = json_object_get(o, key);
	*out = NULL;
	*n = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return ERR("config.json: %s.%s must be a list", where, key);
	if (json_array_size(v) > OCI_MAX_LIST)
		return ERR("config.json: %s.%s has %zu entries (at most %u)", where, key, json_array_size(v),
			   OCI_MAX_LIST);
	*out = v;
	*n = json_array_size(v);
	return 0;
}

/* A key that must be absent or empty: corral has no way to honour it. */
static int unsupported(json_t *o, const char *key, const char *where, const char *why, char *err, size_t errn)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v) || (json_is_string(v) && !json_string_length(v)) ||
	    (json_is_array(v) && !json_array_size(v)) || (json_is_object(v) && !json_object_size(v)))
		return 0;
	return ERR("config.json: %s.%s is not supported by corral-runc (%s)", where, key, why);
}

static const struct {
	const char *name;
	int res;
} rlimit_names[] = {
	{"RLIMIT_AS", RLIMIT_AS},
	{"RLIMIT_CORE", RLIMIT_CORE},
	{"RLIMIT_CPU", RLIMIT_CPU},
	{"RLIMIT_DATA", RLIMIT_DATA},
	{"RLIMIT_FSIZE", RLIMIT_FSIZE},
	{"RLIMIT_LOCKS", RLIMIT_LOCKS},
	{"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
	{"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
	{"RLIMIT_NICE", RLIMIT_NICE},
	{"RLIMIT_NOFILE", RLIMIT_NOFILE},
	{"RLIMIT_NPROC", RLIMIT_NPROC},
	{"RLIMIT_RSS", RLIMIT_RSS},
	{"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
	{"RLIMIT_RTTIME", RLIMIT_RTTIME},
	{"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
	{"RLIMIT_STACK", RLIMIT_STACK},
};

static const char *const cap_names[] = {
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_DAC_READ_SEARCH",
	"CAP_FOWNER",
	"CAP_FSETID",
	"CAP_KILL",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST",
	"CAP_NET_ADMIN",
	"CAP_NET_RAW",
	"CAP_IPC_LOCK",
	"CAP_IPC_OWNER",
	"CAP_SYS_MODULE",
	"CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE",
	"CAP_SYS_PACCT",
	"CAP_SYS_ADMIN",
	"CAP_SYS_BOOT",
	"CAP_SYS_NICE",
	"CAP_SYS_RESOURCE",
	"CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG",
	"CAP_MKNOD",
	"CAP_LEASE",
	"CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL",
	"CAP_SETFCAP",
	"CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN",
	"CAP_SYSLOG",
	"CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND",
	"CAP_AUDIT_READ",
	"CAP_PERFMON",
	"CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
};

static int parse_caps(json_t *c, struct oci_process *p, char *err, size_t errn)
{
	static const char *const sets[5] = {"bounding", "effective", "inheritable", "permitted", "ambient"};
	static const char *const keys[] = {"bounding", "effective", "inheritable", "permitted", "ambient", NULL};
	if (known_keys(c, "process.capabilities", keys, err, errn))
		return -1;
	p->has_caps = 1;
	for (int s = 0; s < 5; s++) {
		const char **names;
		size_t n;
		if (get_strv(c, sets[s], "process.capabilities", &names, &n, err, errn))
			return -1;
		for (size_t k = 0; k < n; k++) {
			size_t c2 = 0;
			while (c2 < sizeof(cap_names) / sizeof(cap_names[0]) && strcmp(cap_names[c2], names[k]))
				c2++;
			if (c2 == sizeof(cap_names) / sizeof(cap_names[0])) {
				ERR("config.json: process.capabilities.%s: unknown capability '%s'", sets[s], names[k]);
				free(names);
				return -1;
			}
			p->caps[s] |= 1ull << c2;
		}
		free(names);
	}
	return 0;
}

int oci_process_parse(json_t *o, struct oci_process *p, int need_args, char *err, size_t errn)
{
	static const char *const keys[] = {"terminal",
					   "consoleSize",
					   "user",
					   "args",
					   "env",
					   "cwd",
					   "capabilities",
					   "rlimits",
					   "noNewPrivileges",
					   "oomScoreAdj",
					   "apparmorProfile",
					   "selinuxLabel",
					   "commandLine",
					   "ioPriority",
					   "scheduler",
					   "execCPUAffinity",
					   NULL};
	memset(p, 0, sizeof(*p));
	if (!json_is_object(o))
		return ERR("config.json: process must be an object");
	if (known_keys(o, "process", keys, err, errn))
		return -1;
	if (unsupported(o, "apparmorProfile", "process", "no AppArmor here", err, errn) ||
	    unsupported(o, "selinuxLabel", "process", "no SELinux here", err, errn) ||
	    unsupported(o, "commandLine", "process", "Windows only", err, errn) ||
	    unsupported(o, "ioPriority", "process", "not implemented", err, errn) ||
	    unsupported(o, "scheduler", "process", "not implemented", err, errn) ||
	    unsupported(o, "execCPUAffinity", "process", "not implemented", err, errn))
		return -1;
	if (get_bool(o, "terminal", "process", &p->terminal, err, errn) ||
	    get_bool(o, "noNewPrivileges", "process", &p->no_new_privs, err, errn))
		return -1;
	if (get_strv(o, "args", "process", &p->args, &p->nargs, err, errn) ||
	    get_strv(o, "env", "process", &p->env, NULL, err, errn))
		return -1;
	if (need_args && (!p->args || !p->nargs || !p->args[0][0]))
		return ERR("config.json: process.args is missing or empty: nothing to run");
	if (!p->env) {
		p->env = calloc(1, sizeof(*p->env));
		if (!p->env)
			return ERR("out of memory");
	}
	for (const char **e = p->env; *e; e++)
		if (!strchr(*e, '=') || **e == '=')
			return ERR("config.json: process.env: '%.64s' is not NAME=VALUE", *e);
	if (get_str(o, "cwd", "process", &p->cwd, 1, err, errn))
		return -1;
	if (p->cwd[0] != '/')
		return ERR("config.json: process.cwd '%.256s' must be an absolute path", p->cwd);
	json_t *cs;
	if (get_obj(o, "consoleSize", "process", &cs, err, errn))
		return -1;
	if (cs) {
		static const char *const cskeys[] = {"height", "width", NULL};
		long long h = 0, w = 0;
		int hh, hw;
		if (known_keys(cs, "process.consoleSize", cskeys, err, errn) ||
		    get_int(cs, "height", "process.consoleSize", 0, 0xffff, &h, &hh, err, errn) ||
		    get_int(cs, "width", "process.consoleSize", 0, 0xffff, &w, &hw, err, errn))
			return -1;
		/* as runc: a size is set only when both are given and non-zero */
		p->console_rows = (unsigned short)h;
		p->console_cols = (unsigned short)w;
	}
	json_t *u;
	if (get_obj(o, "user", "process", &u, err, errn))
		return -1;
	if (!u)
		return ERR("config.json: process.user is missing");
	static const char *const ukeys[] = {"uid", "gid", "umask", "additionalGids", "username", NULL};
	if (known_keys(u, "process.user", ukeys, err, errn))
		return -1;
	long long x;
	int has;
	if (get_int(u, "uid", "process.user", 0, 0xfffffffe, &x, &has, err, errn))
		return -1;
	p->uid = has ? (uid_t)x : 0;
	if (get_int(u, "gid", "process.user", 0, 0xfffffffe, &x, &has, err, errn))
		return -1;
	p->gid = has ? (gid_t)x : 0;
	if (get_int(u, "umask", "process.user", 0, 0777, &x, &p->has_umask, err, errn))
		return -1;
	p->umask = (mode_t)x;
	json_t *g;
	if (get_list(u, "additionalGids", "process.user", &g, &p->ngids, err, errn))
		return -1;
	if (p->ngids > 64)
		return ERR("config.json: process.user.additionalGids: %zu groups (at most 64)", p->ngids);
	if (p->ngids && !(p->gids = calloc(p->ngids, sizeof(gid_t))))
		return ERR("out of memory");
	for (size_t k = 0; k < p->ngids; k++) {
		json_t *e = json_array_get(g, k);
		if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > 0xfffffffe)
			return ERR("config.json: process.user.additionalGids[%zu] must be a gid", k);
		p->gids[k] = (gid_t)json_integer_value(e);
	}
	json_t *c;
	if (get_obj(o, "capabilities", "process", &c, err, errn) || (c && parse_caps(c, p, err, errn)))
		return -1;
	json_t *rl;
	if (get_list(o, "rlimits", "process", &rl, &p->nrlimits, err, errn))
		return -1;
	if (p->nrlimits && !(p->rlimits = calloc(p->nrlimits, sizeof(*p->rlimits))))
		return ERR("out of memory");
	for (size_t k = 0; k < p->nrlimits; k++) {
		json_t *e = json_array_get(rl, k);
		const char *type = NULL;
		long long soft = 0, hard = 0;
		static const char *const rkeys[] = {"type", "soft", "hard", NULL};
		if (!json_is_object(e))
			return ERR("config.json: process.rlimits[%zu] must be an object", k);
		if (known_keys(e, "process.rlimits[]", rkeys, err, errn) ||
		    get_str(e, "type", "process.rlimits[]", &type, 1, err, errn))
			return -1;
		json_t *sv = json_object_get(e, "soft"), *hv = json_object_get(e, "hard");
		if (!json_is_integer(sv) || !json_is_integer(hv))
			return ERR("config.json: process.rlimits[%zu] needs integer soft and hard", k);
		soft = json_integer_value(sv);
		hard = json_integer_value(hv);
		size_t r = 0;
		while (r < sizeof(rlimit_names) / sizeof(rlimit_names[0]) && strcmp(rlimit_names[r].name, type))
			r++;
		if (r == sizeof(rlimit_names) / sizeof(rlimit_names[0]))
			return ERR("config.json: process.rlimits[%zu]: unknown type '%.64s'", k, type);
		/* JSON integers are signed 64-bit: -1 and 2^64-1 both mean unlimited */
		p->rlimits[k].res = rlimit_names[r].res;
		p->rlimits[k].lim.rlim_cur = soft < 0 ? RLIM_INFINITY : (rlim_t)soft;
		p->rlimits[k].lim.rlim_max = hard < 0 ? RLIM_INFINITY : (rlim_t)hard;
		if (p->rlimits[k].lim.rlim_cur > p->rlimits[k].lim.rlim_max)
			return ERR("config.json: process.rlimits[%zu] (%s): soft limit above hard limit", k, type);
	}
	if (get_int(o, "oomScoreAdj", "process", -1000, 1000, &x, &p->has_oom, err, errn))
		return -1;
	p->oom_score_adj = (int)x;
	return 0;
}

void oci_process_free(struct oci_process *p)
{
	free(p->args);
	free(p->env);
	free(p->gids);
	free(p->rlimits);
	memset(p, 0, sizeof(*p));
}

static const struct {
	const char *name;
	int clear;
	unsigned long flag;
} mount_opts[] = {
	{"ro", 0, MS_RDONLY},
	{"rw", 1, MS_RDONLY},
	{"nosuid", 0, MS_NOSUID},
	{"suid", 1, MS_NOSUID},
	{"nodev", 0, MS_NODEV},
	{"dev", 1, MS_NODEV},
	{"noexec", 0, MS_NOEXEC},
	{"exec", 1, MS_NOEXEC},
	{"sync", 0, MS_SYNCHRONOUS},
	{"async", 1, MS_SYNCHRONOUS},
	{"dirsync", 0, MS_DIRSYNC},
	{"remount", 0, MS_REMOUNT},
	{"mand", 0, MS_MANDLOCK},
	{"nomand", 1, MS_MANDLOCK},
	{"noatime", 0, MS_NOATIME},
	{"atime", 1, MS_NOATIME},
	{"nodiratime", 0, MS_NODIRATIME},
	{"diratime", 1, MS_NODIRATIME},
	{"relatime", 0, MS_RELATIME},
	{"norelatime", 1, MS_RELATIME},
	{"strictatime", 0, MS_STRICTATIME},
	{"bind", 0, MS_BIND},
	{"rbind", 0, MS_BIND | MS_REC},
};

static const struct {
	const char *name;
	unsigned long flag;
} prop_opts[] = {
	{"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
	{"shared", MS_SHARED},	       {"rshared", MS_SHARED | MS_REC},
	{"slave", MS_SLAVE},	       {"rslave", MS_SLAVE | MS_REC},
	{"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

static int parse_propagation(const char *s, unsigned long *out)
{
	for (size_t k = 0; k < sizeof(prop_opts) / sizeof(prop_opts[0]); k++)
		if (!strcmp(prop_opts[k].name, s)) {
			*out = prop_opts[k].flag;
			return 0;
		}
	return -1;
}

/* A path inside the container: absolute, no NUL, no ".." component (mount
 * destinations are resolved inside the root anyway; ".." is refused so a
 * config cannot even ask). */
static int check_cpath(const char *p, const char *what, char *err, size_t errn)
{
	if (p[0] != '/')
		return ERR("config.json: %s '%.256s' must be an absolute path", what, p);
	if (strlen(p) >= 4096)
		return ERR("config.json: %s is longer than 4095 bytes", what);
	for (const char *c = p; (c = strstr(c, "..")); c += 2)
		if (c[-1] == '/' && (c[2] == '/' || !c[2]))
			return ERR("config.json: %s '%.256s' has a '..' component", what, p);
	return 0;
}

static int parse_mounts(json_t *root, struct oci_spec *s, char *err, size_t errn)
{
	json_t *l;
	if (get_list(root, "mounts", "", &l, &s->nmounts, err, errn))
		return -1;
	if (s->nmounts && !(s->mounts = calloc(s->nmounts, sizeof(*s->mounts))))
		return ERR("out of memory");
	for (size_t k = 0; k < s->nmounts; k++) {
		json_t *m = json_array_get(l, k);
		struct oci_mount *om = &s->mounts[k];
		static const char *const keys[] = {"destination", "type",	 "source", "options",
						   "uidMappings", "gidMappings", NULL};
		if (!json_is_object(m))
			return ERR("config.json: mounts[%zu] must be an object", k);
		if (known_keys(m, "mounts[]", keys, err, errn) ||
		    unsupported(m, "uidMappings", "mounts[]", "no id-mapped mounts", err, errn) ||
		    unsupported(m, "gidMappings", "mounts[]", "no id-mapped mounts", err, errn) ||
		    get_str(m, "destination", "mounts[]", &om->dest, 1, err, errn) ||
		    get_str(m, "type", "mounts[]", &om->type, 0, err, errn) ||
		    get_str(m, "source", "mounts[]", &om->source, 0, err, errn) ||
		    check_cpath(om->dest, "mounts[].destination", err, errn))
			return -1;
		const char **opts;
		size_t nopts;
		if (get_strv(m, "options", "mounts[]", &opts, &nopts, err, errn))
			return -1;
		char data[4096];
		size_t dl = 0;
		data[0] = 0;
		for (size_t o = 0; o < nopts; o++) {
			size_t f = 0;
			while (f < sizeof(mount_opts) / sizeof(mount_opts[0]) && strcmp(mount_opts[f].name, opts[o]))
				f++;
			unsigned long pf;
			if (f < sizeof(mount_opts) / sizeof(mount_opts[0])) {
				if (mount_opts[f].clear)
					om->flags &= ~mount_opts[f].flag;
				else
					om->flags |= mount_opts[f].flag;
			} else if (!parse_propagation(opts[o], &pf)) {
				om->propagation = pf;
			} else if (!strcmp(opts[o], "tmpcopyup")) {
				om->tmpcopyup = 1;
			} else if (!strcmp(opts[o], "idmap") || !strcmp(opts[o], "ridmap") ||
				   !strncmp(opts[o], "rro", 3) || !strncmp(opts[o], "x-", 2) ||
				   !strcmp(opts[o], "copy") || !strcmp(opts[o], "nocopy") || !strcmp(opts[o], "U")) {
				free(opts);
				return ERR("config.json: mounts[%zu] (%.256s): option '%.64s' is not supported by "
					   "corral-runc",
					   k, om->dest, opts[o]);
			} else {
				int w = snprintf(data + dl, sizeof(data) - dl, "%s%s", dl ? "," : "", opts[o]);
				if (w < 0 || (size_t)w >= sizeof(data) - dl) {
					free(opts);
					return ERR("config.json: mounts[%zu]: options too long", k);
				}
				dl += (size_t)w;
			}
		}
		free(opts);
		om->bind = (om->flags & MS_BIND) || (om->type && !strcmp(om->type, "bind"));
		if (om->bind)
			om->flags |= MS_BIND;
		if (!om->bind && !om->type)
			return ERR("config.json: mounts[%zu] (%.256s) has no type and is not a bind mount", k,
				   om->dest);
		if (om->bind && (!om->source || om->source[0] != '/'))
			return ERR("config.json: mounts[%zu] (%.256s): a bind mount needs an absolute source", k,
				   om->dest);
		if (om->tmpcopyup && (!om->type || strcmp(om->type, "tmpfs")))
			return ERR("config.json: mounts[%zu] (%.256s): tmpcopyup needs a tmpfs", k, om->dest);
		if (om->flags & MS_REMOUNT)
			return ERR("config.json: mounts[%zu]: option 'remount' is not supported by corral-runc", k);
		if (dl) {
			json_t *d = json_string(data);
			if (!d || json_array_append_new(json_object_get(s->json, "__corral_data"), d))
				return ERR("out of memory");
			om->data = json_string_value(d);
		}
		if (om->type && !om->bind) {
			static const char *const types[] = {"proc",   "sysfs",	 "tmpfs", "devpts", "mqueue",
							    "cgroup", "cgroup2", "bind",  NULL};
			int ok = 0;
			for (const char *const *t = types; *t; t++)
				ok |= !strcmp(*t, om->type);
			if (!ok)
				return ERR("config.json: mounts[%zu] (%.256s): type '%.64s' is not supported by "
					   "corral-runc (proc, sysfs, tmpfs, devpts, mqueue, cgroup, bind)",
					   k, om->dest, om->type);
		}
	}
	return 0;
}

static const struct {
	const char *name;
	int type;
} ns_names[] = {
	{"pid", CLONE_NEWPID}, {"network", CLONE_NEWNET}, {"mount", CLONE_NEWNS},      {"ipc", CLONE_NEWIPC},
	{"uts", CLONE_NEWUTS}, {"user", CLONE_NEWUSER},	  {"cgroup", CLONE_NEWCGROUP},
};

int oci_ns_has(const struct oci_spec *s, int type)
{
	for (size_t k = 0; k < s->nns; k++)
		if (s->ns[k].type == type)
			return 1;
	return 0;
}

static int parse_idmaps(json_t *lx, const char *key, struct oci_idmap *m, size_t *n, char *err, size_t errn)
{
	json_t *l;
	if (get_list(lx, key, "linux", &l, n, err, errn))
		return -1;
	if (*n > 16)
		return ERR("config.json: linux.%s: %zu entries (at most 16)", key, *n);
	for (size_t k = 0; k < *n; k++) {
		json_t *e = json_array_get(l, k);
		long long c, h, sz;
		int h1, h2, h3;
		static const char *const keys[] = {"containerID", "hostID", "size", NULL};
		if (!json_is_object(e))
			return ERR("config.json: linux.%s[%zu] must be an object", key, k);
		if (known_keys(e, "linux.idmap", keys, err, errn) ||
		    get_int(e, "containerID", key, 0, 0xfffffffe, &c, &h1, err, errn) ||
		    get_int(e, "hostID", key, 0, 0xfffffffe, &h, &h2, err, errn) ||
		    get_int(e, "size", key, 1, 0xffffffff, &sz, &h3, err, errn))
			return -1;
		if (!h1 || !h2 || !h3 || c + sz > 0xffffffffll || h + sz > 0xffffffffll)
			return ERR("config.json: linux.%s[%zu]: containerID, hostID and size must all be given and fit "
				   "in 32 bits",
				   key, k);
		m[k].container = (unsigned)c;
		m[k].host = (unsigned)h;
		m[k].size = (unsigned)sz;
	}
	return 0;
}

static int parse_devrules(json_t *r, struct oci_resources *res, char *err, size_t errn)
{
	json_t *l;
	if (get_list(r, "devices", "linux.resources", &l, &res->ndevices, err, errn))
		return -1;
	if (res->ndevices && !(res->devices = calloc(res->ndevices, sizeof(*res->devices))))
		return ERR("out of memory");
	for (size_t k = 0; k < res->ndevices; k++) {
		json_t *e = json_array_get(l, k);
		struct oci_devrule *d = &res->devices[k];
		static const char *const keys[] = {"allow", "type", "major", "minor", "access", NULL};
		const char *type = "a";
		long long x;
		int has;
		if (!json_is_object(e))
			return ERR("config.json: linux.resources.devices[%zu] must be an object", k);
		if (known_keys(e, "linux.resources.devices[]", keys, err, errn) ||
		    get_bool(e, "allow", "linux.resources.devices[]", &d->allow, err, errn) ||
		    get_str(e, "type", "linux.resources.devices[]", &type, 0, err, errn) ||
		    get_str(e, "access", "linux.resources.devices[]", &d->access, 0, err, errn))
			return -1;
		if (strlen(type) != 1 || !strchr("acb", type[0]))
			return ERR("config.json: linux.resources.devices[%zu]: type must be a, c or b", k);
		d->type = type[0];
		if (!d->access)
			d->access = "rwm";
		if (!d->access[0] || strspn(d->access, "rwm") != strlen(d->access) || strlen(d->access) > 3)
			return ERR("config.json: linux.resources.devices[%zu]: access must be letters of rwm", k);
		if (get_int(e, "major", "linux.resources.devices[]", -1, 0xfffff, &x, &has, err, errn))
			return -1;
		d->major = has ? (long)x : -1;
		if (get_int(e, "minor", "linux.resources.devices[]", -1, 0xfffff, &x, &has, err, errn))
			return -1;
		d->minor = has ? (long)x : -1;
	}
	return 0;
}

static int parse_resources(json_t *r, struct oci_resources *res, char *err, size_t errn)
{
	static const char *const keys[] = {"memory",	     "cpu",	"pids", "devices", "blockIO",
					   "hugepageLimits", "network", "rdma", "unified", NULL};
	if (known_keys(r, "linux.resources", keys, err, errn) ||
	    unsupported(r, "blockIO", "linux.resources", "no blkio limits", err, errn) ||
	    unsupported(r, "hugepageLimits", "linux.resources", "no hugetlb limits", err, errn) ||
	    unsupported(r, "network", "linux.resources", "no net_cls/net_prio", err, errn) ||
	    unsupported(r, "rdma", "linux.resources", "no rdma limits", err, errn) ||
	    unsupported(r, "unified", "linux.resources", "this host's cgroup v2 hierarchy has no controllers", err,
			errn))
		return -1;
	json_t *m, *c, *p;
	long long x;
	if (get_obj(r, "memory", "linux.resources", &m, err, errn) ||
	    get_obj(r, "cpu", "linux.resources", &c, err, errn) || get_obj(r, "pids", "linux.resources", &p, err, errn))
		return -1;
	if (m) {
		static const char *const mk[] = {"limit",
						 "reservation",
						 "swap",
						 "kernel",
						 "kernelTCP",
						 "swappiness",
						 "disableOOMKiller",
						 "useHierarchy",
						 "checkBeforeUpdate",
						 NULL};
		if (known_keys(m, "linux.resources.memory", mk, err, errn) ||
		    unsupported(m, "kernel", "linux.resources.memory", "deprecated kernel memory limit", err, errn) ||
		    unsupported(m, "kernelTCP", "linux.resources.memory", "no kernel TCP limit", err, errn) ||
		    unsupported(m, "swappiness", "linux.resources.memory", "not implemented", err, errn))
			return -1;
		json_t *d = json_object_get(m, "disableOOMKiller");
		if (d && json_is_true(d))
			return ERR(
				"config.json: linux.resources.memory.disableOOMKiller is not supported by corral-runc");
		if (get_int(m, "limit", "linux.resources.memory", -1, 1ll << 50, &x, &res->has_mem_limit, err, errn))
			return -1;
		res->mem_limit = x;
		if (res->has_mem_limit && x >= 0 && x < (4 << 20))
			return ERR("config.json: linux.resources.memory.limit %lld is below 4 MiB: corral itself "
				   "would not start",
				   x);
		if (get_int(m, "reservation", "linux.resources.memory", -1, 1ll << 50, &x, &res->has_mem_reservation,
			    err, errn))
			return -1;
		res->mem_reservation = x;
		if (get_int(m, "swap", "linux.resources.memory", -1, 1ll << 50, &x, &res->has_mem_swap, err, errn))
			return -1;
		res->mem_swap = x;
	}
	if (c) {
		static const char *const ck[] = {"shares", "quota", "period", "realtimeRuntime", "realtimePeriod",
						 "cpus",   "mems",  "idle",   "burst",		 NULL};
		if (known_keys(c, "linux.resources.cpu", ck, err, errn) ||
		    unsupported(c, "realtimeRuntime", "linux.resources.cpu", "no realtime scheduling", err, errn) ||
		    unsupported(c, "realtimePeriod", "linux.resources.cpu", "no realtime scheduling", err, errn) ||
		    unsupported(c, "burst", "linux.resources.cpu", "cgroup v2 only", err, errn) ||
		    unsupported(c, "idle", "linux.resources.cpu", "cgroup v2 only", err, errn))
			return -1;
		if (get_int(c, "shares", "linux.resources.cpu", 0, 262144, &x, NULL, err, errn))
			return -1;
		res->cpu_shares = json_object_get(c, "shares") ? (uint64_t)x : 0;
		res->cpu_quota = 0;
		if (get_int(c, "quota", "linux.resources.cpu", -1, 1ll << 40, &x, NULL, err, errn))
			return -1;
		if (json_object_get(c, "quota"))
			res->cpu_quota = x;
		if (get_int(c, "period", "linux.resources.cpu", 0, 1000000, &x, NULL, err, errn))
			return -1;
		res->cpu_period = json_object_get(c, "period") ? (uint64_t)x : 0;
		if (res->cpu_period && res->cpu_period < 1000)
			return ERR("config.json: linux.resources.cpu.period %llu is below 1000 microseconds",
				   (unsigned long long)res->cpu_period);
		if (get_str(c, "cpus", "linux.resources.cpu", &res->cpus, 0, err, errn) ||
		    get_str(c, "mems", "linux.resources.cpu", &res->mems, 0, err, errn))
			return -1;
		for (const char *l2 = res->cpus; l2 && *l2; l2++)
			if (!strchr("0123456789,-", *l2))
				return ERR("config.json: linux.resources.cpu.cpus '%.64s' is not a CPU list",
					   res->cpus);
		for (const char *l2 = res->mems; l2 && *l2; l2++)
			if (!strchr("0123456789,-", *l2))
				return ERR("config.json: linux.resources.cpu.mems '%.64s' is not a node list",
					   res->mems);
	}
	if (p) {
		static const char *const pk[] = {"limit", NULL};
		if (known_keys(p, "linux.resources.pids", pk, err, errn) ||
		    get_int(p, "limit", "linux.resources.pids", -1, 1 << 22, &x, &res->has_pids, err, errn))
			return -1;
		res->pids_limit = x;
		/* corral's process VM is a few host threads: fewer than that
		 * cannot start at all */
		if (res->has_pids && x > 0 && x < 4)
			return ERR("config.json: linux.resources.pids.limit %lld is below 4: a process VM needs a few "
				   "host threads",
				   x);
	}
	return parse_devrules(r, res, err, errn);
}

int oci_spec_hooks(json_t *h, struct oci_spec *s, char *err, size_t errn)
{
	static const char *const kinds[OCI_HOOK_KINDS] = {"prestart",	    "createRuntime", "createContainer",
							  "startContainer", "poststart",     "poststop"};
	static const char *const keys[] = {
		"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop", NULL};
	if (known_keys(h, "hooks", keys, err, errn))
		return -1;
	for (int k = 0; k < OCI_HOOK_KINDS; k++) {
		json_t *l;
		if (get_list(h, kinds[k], "hooks", &l, &s->nhooks[k], err, errn))
			return -1;
		if (s->nhooks[k] && !(s->hooks[k] = calloc(s->nhooks[k], sizeof(struct oci_hook))))
			return ERR("out of memory");
		for (size_t j = 0; j < s->nhooks[k]; j++) {
			json_t *e = json_array_get(l, j);
			struct oci_hook *hk = &s->hooks[k][j];
			static const char *const hkeys[] = {"path", "args", "env", "timeout", NULL};
			long long t = 0;
			int has;
			if (!json_is_object(e))
				return ERR("config.json: hooks.%s[%zu] must be an object", kinds[k], j);
			if (known_keys(e, "hooks[]", hkeys, err, errn) ||
			    get_str(e, "path", "hooks[]", &hk->path, 1, err, errn) ||
			    get_strv(e, "args", "hooks[]", &hk->args, NULL, err, errn) ||
			    get_strv(e, "env", "hooks[]", &hk->env, NULL, err, errn) ||
			    get_int(e, "timeout", "hooks[]", 1, 3600, &t, &has, err, errn))
				return -1;
			if (hk->path[0] != '/')
				return ERR("config.json: hooks.%s[%zu].path '%.256s' must be absolute", kinds[k], j,
					   hk->path);
			hk->timeout = has ? (int)t : 0;
		}
	}
	return 0;
}

/* linux.devices: nodes of the given type, numbers, mode and owner; what
 * the devices cgroup allows is linux.resources.devices, as under runc */
static int parse_devices(json_t *l, struct oci_spec *s, char *err, size_t errn)
{
	json_t *dl;
	if (get_list(l, "devices", "linux", &dl, &s->ndevices, err, errn))
		return -1;
	if (s->ndevices && !(s->devices = calloc(s->ndevices, sizeof(*s->devices))))
		return ERR("out of memory");
	for (size_t k = 0; k < s->ndevices; k++) {
		static const char *const keys[] = {"path", "type", "major", "minor", "fileMode", "uid", "gid", NULL};
		json_t *e = json_array_get(dl, k);
		struct oci_device *d = &s->devices[k];
		const char *type;
		long long x;
		int has;
		if (!json_is_object(e))
			return ERR("config.json: linux.devices[%zu] must be an object", k);
		if (known_keys(e, "linux.devices[]", keys, err, errn) ||
		    get_str(e, "path", "linux.devices[]", &d->path, 1, err, errn) ||
		    check_cpath(d->path, "linux.devices[].path", err, errn) ||
		    get_str(e, "type", "linux.devices[]", &type, 1, err, errn))
			return -1;
		if (!strcmp(d->path, "/") || !strcmp(d->path, "/dev") || !strcmp(d->path, "/dev/"))
			return ERR("config.json: linux.devices[%zu].path '%.64s' is not a node's path", k, d->path);
		/* runtime-spec: "c" and "u" are both unbuffered character devices */
		if (!strcmp(type, "c") || !strcmp(type, "u"))
			d->type = S_IFCHR;
		else if (!strcmp(type, "b"))
			d->type = S_IFBLK;
		else if (!strcmp(type, "p"))
			d->type = S_IFIFO;
		else
			return ERR("config.json: linux.devices[%zu].type '%.16s' must be c, u, b or p", k, type);
		/* the kernel's dev_t: 12-bit major, 20-bit minor */
		if (get_int(e, "major", "linux.devices[]", 0, 0xfff, &x, &has, err, errn))
			return -1;
		if (!has && d->type != S_IFIFO)
			return ERR("config.json: linux.devices[%zu] (%.256s) needs a major number", k, d->path);
		d->major = has ? (unsigned)x : 0;
		if (get_int(e, "minor", "linux.devices[]", 0, 0xfffff, &x, &has, err, errn))
			return -1;
		if (!has && d->type != S_IFIFO)
			return ERR("config.json: linux.devices[%zu] (%.256s) needs a minor number", k, d->path);
		d->minor = has ? (unsigned)x : 0;
		/* Podman sends the type's bits too (020666): they must agree */
		if (get_int(e, "fileMode", "linux.devices[]", 0, 0177777, &x, &has, err, errn))
			return -1;
		if (has && (x & ~07777) && (mode_t)(x & ~07777) != d->type)
			return ERR("config.json: linux.devices[%zu].fileMode 0%llo is not of type '%.16s'", k, x, type);
		d->mode = has ? (mode_t)(x & 07777) : 0666;
		if (get_int(e, "uid", "linux.devices[]", 0, 0xfffffffe, &x, &has, err, errn))
			return -1;
		d->uid = has ? (uid_t)x : 0;
		if (get_int(e, "gid", "linux.devices[]", 0, 0xfffffffe, &x, &has, err, errn))
			return -1;
		d->gid = has ? (gid_t)x : 0;
	}
	return 0;
}

static int parse_linux(json_t *l, struct oci_spec *s, char *err, size_t errn)
{
	static const char *const keys[] = {"namespaces",	"uidMappings", "gidMappings",	"resources",
					   "cgroupsPath",	"maskedPaths", "readonlyPaths", "sysctl",
					   "rootfsPropagation", "devices",     "seccomp",	"mountLabel",
					   "intelRdt",		"personality", "timeOffsets",	NULL};
	if (known_keys(l, "linux", keys, err, errn) || parse_devices(l, s, err, errn) ||
	    unsupported(l, "mountLabel", "linux", "no SELinux here", err, errn) ||
	    unsupported(l, "intelRdt", "linux", "no resctrl", err, errn) ||
	    unsupported(l, "personality", "linux", "x86-64 only", err, errn) ||
	    unsupported(l, "timeOffsets", "linux", "no time namespaces", err, errn))
		return -1;
	json_t *scf = json_object_get(l, "seccomp");
	if (scf && !json_is_null(scf)) {
		void *f;
		if (oci_seccomp_build(scf, s->proc.no_new_privs, &f, err, errn))
			return -1;
		oci_seccomp_free(f);
		s->proc.seccomp = scf;
	}
	json_t *nl;
	size_t n;
	if (get_list(l, "namespaces", "linux", &nl, &n, err, errn))
		return -1;
	for (size_t k = 0; k < n; k++) {
		json_t *e = json_array_get(nl, k);
		const char *type = NULL, *path = NULL;
		static const char *const nkeys[] = {"type", "path", NULL};
		if (!json_is_object(e))
			return ERR("config.json: linux.namespaces[%zu] must be an object", k);
		if (known_keys(e, "linux.namespaces[]", nkeys, err, errn) ||
		    get_str(e, "type", "linux.namespaces[]", &type, 1, err, errn) ||
		    get_str(e, "path", "linux.namespaces[]", &path, 0, err, errn))
			return -1;
		size_t t = 0;
		while (t < sizeof(ns_names) / sizeof(ns_names[0]) && strcmp(ns_names[t].name, type))
			t++;
		if (t == sizeof(ns_names) / sizeof(ns_names[0]))
			return ERR("config.json: linux.namespaces[%zu]: type '%.64s' is not supported by corral-runc",
				   k, type);
		if (oci_ns_has(s, ns_names[t].type))
			return ERR("config.json: linux.namespaces: '%s' is given twice", type);
		if (path && path[0] != '/')
			return ERR("config.json: linux.namespaces[%zu].path '%.256s' must be absolute", k, path);
		s->ns[s->nns].type = ns_names[t].type;
		s->ns[s->nns].path = path && *path ? path : NULL;
		s->nns++;
	}
	if (parse_idmaps(l, "uidMappings", s->uidmap, &s->nuidmap, err, errn) ||
	    parse_idmaps(l, "gidMappings", s->gidmap, &s->ngidmap, err, errn))
		return -1;
	if ((s->nuidmap || s->ngidmap) && !oci_ns_has(s, CLONE_NEWUSER))
		return ERR("config.json: linux.uidMappings/gidMappings need a user namespace");
	if (oci_ns_has(s, CLONE_NEWUSER)) {
		for (size_t k = 0; k < s->nns; k++)
			if (s->ns[k].type == CLONE_NEWUSER && !s->ns[k].path && (!s->nuidmap || !s->ngidmap))
				return ERR("config.json: a new user namespace needs linux.uidMappings and gidMappings");
	}
	json_t *r;
	if (get_obj(l, "resources", "linux", &r, err, errn) || (r && parse_resources(r, &s->res, err, errn)))
		return -1;
	if (get_str(l, "cgroupsPath", "linux", &s->cgroups_path, 0, err, errn))
		return -1;
	if (s->cgroups_path) {
		const char *c = s->cgroups_path;
		if (strchr(c, ':'))
			return ERR("config.json: linux.cgroupsPath '%.256s' is a systemd slice:prefix:name; "
				   "corral-runc manages cgroupfs paths only (use --cgroup-manager cgroupfs)",
				   c);
		if (strlen(c) > 1024)
			return ERR("config.json: linux.cgroupsPath is longer than 1024 bytes");
		for (const char *p = c; (p = strstr(p, "..")); p += 2)
			if ((p == c || p[-1] == '/') && (p[2] == '/' || !p[2]))
				return ERR("config.json: linux.cgroupsPath '%.256s' has a '..' component", c);
	}
	if (get_strv(l, "maskedPaths", "linux", &s->masked, &s->nmasked, err, errn) ||
	    get_strv(l, "readonlyPaths", "linux", &s->readonly, &s->nreadonly, err, errn))
		return -1;
	for (size_t k = 0; k < s->nmasked; k++)
		if (check_cpath(s->masked[k], "linux.maskedPaths[]", err, errn))
			return -1;
	for (size_t k = 0; k < s->nreadonly; k++)
		if (check_cpath(s->readonly[k], "linux.readonlyPaths[]", err, errn))
			return -1;
	json_t *sc;
	if (get_obj(l, "sysctl", "linux", &sc, err, errn))
		return -1;
	if (sc) {
		s->nsysctl = json_object_size(sc);
		if (s->nsysctl > OCI_MAX_LIST)
			return ERR("config.json: linux.sysctl has too many entries");
		s->sysctl_keys = calloc(s->nsysctl + 1, sizeof(char *));
		s->sysctl_vals = calloc(s->nsysctl + 1, sizeof(char *));
		if (!s->sysctl_keys || !s->sysctl_vals)
			return ERR("out of memory");
		const char *k;
		json_t *v;
		size_t i = 0;
		json_object_foreach(sc, k, v)
		{
			if (!json_is_string(v))
				return ERR("config.json: linux.sysctl.%.64s must be a string", k);
			if (!*k || strstr(k, "..") || strchr(k, '/') || k[0] == '.')
				return ERR("config.json: linux.sysctl: bad key '%.64s'", k);
			/* Only namespaced ones: anything else would change the host. */
			if (strncmp(k, "net.", 4) && strncmp(k, "kernel.msg", 10) && strncmp(k, "kernel.sem", 10) &&
			    strncmp(k, "kernel.shm", 10) && strcmp(k, "kernel.domainname") &&
			    strcmp(k, "kernel.hostname") && strncmp(k, "fs.mqueue.", 10))
				return ERR("config.json: linux.sysctl.%.64s is not namespaced: refused", k);
			if (!strncmp(k, "net.", 4) && !oci_ns_has(s, CLONE_NEWNET))
				return ERR("config.json: linux.sysctl.%.64s needs a network namespace of its own", k);
			s->sysctl_keys[i] = k;
			s->sysctl_vals[i++] = json_string_value(v);
		}
	}
	const char *prop = NULL;
	if (get_str(l, "rootfsPropagation", "linux", &prop, 0, err, errn))
		return -1;
	if (prop && parse_propagation(prop, &s->rootfs_propagation))
		return ERR("config.json: linux.rootfsPropagation '%.64s' is not a propagation type", prop);
	return 0;
}

int oci_spec_load(const char *bundle, struct oci_spec *s, char *err, size_t errn)
{
	memset(s, 0, sizeof(*s));
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/config.json", bundle) >= (int)sizeof(path))
		return ERR("bundle path too long");
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return ERR("%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > OCI_MAX_CONFIG) {
		close(fd);
		return ERR("%s: not a regular file of at most %u bytes", path, OCI_MAX_CONFIG);
	}
	json_error_t je;
	s->json = json_loadfd(fd, JSON_REJECT_DUPLICATES, &je);
	close(fd);
	if (!s->json)
		return ERR("%s: line %d: %s", path, je.line, je.text);
	json_t *j = s->json;
	if (!json_is_object(j))
		return ERR("%s: not a JSON object", path);
	/* mount data strings built from options live here, owned by the JSON */
	json_t *tmp = json_array();
	if (!tmp || json_object_set_new(j, "__corral_data", tmp))
		return ERR("out of memory");
	static const char *const keys[] = {"ociVersion", "root",	  "mounts", "process",
					   "hostname",	 "domainname",	  "hooks",  "annotations",
					   "linux",	 "__corral_data", NULL};
	if (known_keys(j, "", keys, err, errn))
		return -1;
	const char *ver = NULL;
	if (get_str(j, "ociVersion", "", &ver, 1, err, errn))
		return -1;
	if (strncmp(ver, "1.", 2))
		return ERR("config.json: ociVersion '%.64s' is not 1.x", ver);
	json_t *root;
	if (get_obj(j, "root", "", &root, err, errn))
		return -1;
	if (!root)
		return ERR("config.json: root is missing");
	static const char *const rkeys[] = {"path", "readonly", NULL};
	if (known_keys(root, "root", rkeys, err, errn) || get_str(root, "path", "root", &s->root_path, 1, err, errn) ||
	    get_bool(root, "readonly", "root", &s->root_readonly, err, errn))
		return -1;
	if (!s->root_path[0])
		return ERR("config.json: root.path is empty");
	json_t *p = json_object_get(j, "process");
	if (!p)
		return ERR("config.json: process is missing: nothing to run");
	if (oci_process_parse(p, &s->proc, 1, err, errn))
		return -1;
	if (get_str(j, "hostname", "", &s->hostname, 0, err, errn))
		return -1;
	if (s->hostname && strlen(s->hostname) > 64)
		return ERR("config.json: hostname is longer than 64 bytes");
	if (unsupported(j, "domainname", "", "not implemented", err, errn))
		return -1;
	json_t *an;
	if (get_obj(j, "annotations", "", &an, err, errn))
		return -1;
	if (an) {
		const char *k;
		json_t *v;
		json_object_foreach(an, k, v) if (!json_is_string(v)) return ERR(
			"config.json: annotations.%.64s must be a string", k);
	}
	json_t *h;
	if (get_obj(j, "hooks", "", &h, err, errn) || (h && oci_spec_hooks(h, s, err, errn)))
		return -1;
	if (parse_mounts(j, s, err, errn))
		return -1;
	json_t *l;
	if (get_obj(j, "linux", "", &l, err, errn))
		return -1;
	if (!l)
		return ERR("config.json: linux is missing (corral-runc runs Linux containers)");
	if (parse_linux(l, s, err, errn))
		return -1;
	if (!oci_ns_has(s, CLONE_NEWNS))
		return ERR("config.json: linux.namespaces has no mount namespace: corral-runc needs one");
	if (s->hostname && *s->hostname && !oci_ns_has(s, CLONE_NEWUTS))
		return ERR("config.json: hostname needs a uts namespace of its own");
	int has_proc = 0;
	for (size_t k = 0; k < s->nmounts; k++)
		has_proc |=
			s->mounts[k].type && !strcmp(s->mounts[k].type, "proc") && !strcmp(s->mounts[k].dest, "/proc");
	if (!has_proc)
		return ERR("config.json: no proc mount on /proc: corral-runc needs one (a process VM re-executes "
			   "itself through /proc/self/exe)");
	return 0;
}

void oci_spec_free(struct oci_spec *s)
{
	oci_process_free(&s->proc);
	free(s->mounts);
	free(s->masked);
	free(s->readonly);
	free(s->res.devices);
	free(s->devices);
	for (int k = 0; k < OCI_HOOK_KINDS; k++) {
		for (size_t j = 0; j < s->nhooks[k]; j++) {
			free(s->hooks[k][j].args);
			free(s->hooks[k][j].env);
		}
		free(s->hooks[k]);
	}
	free(s->sysctl_keys);
	free(s->sysctl_vals);
	if (s->json)
		json_decref(s->json);
	memset(s, 0, sizeof(*s));
}

int oci_process_load(const char *file, json_t **owner, struct oci_process *p, char *err, size_t errn)
{
	*owner = NULL;
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return ERR("%s: %s", file, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > OCI_MAX_CONFIG) {
		close(fd);
		return ERR("%s: not a regular file of at most %u bytes", file, OCI_MAX_CONFIG);
	}
	json_error_t je;
	*owner = json_loadfd(fd, JSON_REJECT_DUPLICATES, &je);
	close(fd);
	if (!*owner)
		return ERR("%s: line %d: %s", file, je.line, je.text);
	return oci_process_parse(*owner, p, 1, err, errn);
}
