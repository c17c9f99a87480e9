/* Argument parsing shared by the subcommands. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"

int cli_parse_size(const char *s, unsigned bare_shift, uint64_t *out)
{
	char *end;
	if (!*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	unsigned shift;
	switch (*end) {
	case 0: shift = bare_shift; break;
	case 'b':
	case 'B': shift = 0; break;
	case 'k':
	case 'K': shift = 10; break;
	case 'm':
	case 'M': shift = 20; break;
	case 'g':
	case 'G': shift = 30; break;
	case 't':
	case 'T': shift = 40; break;
	case 'p':
	case 'P': shift = 50; break;
	default: return -1;
	}
	if (*end)
		end++;
	if (shift && (*end == 'i' || *end == 'I'))
		end++;
	if (shift && (*end == 'b' || *end == 'B'))
		end++;
	if (*end)
		return -1;
	if (v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

int cli_parse_signal(const char *s)
{
	static const struct {
		const char *name;
		int num;
	} names[] = {
		{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
		{"TERM", SIGTERM}, {"ALRM", SIGALRM}, {"XCPU", SIGXCPU}, {"PWR", SIGPWR},
	};
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	char *end;
	if (*s >= '0' && *s <= '9') {
		long n = strtol(s, &end, 10);
		return !*end && n >= 1 && n <= 64 ? (int)n : -1;
	}
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (!strcasecmp(s, names[k].name))
			return names[k].num;
	if (!strncasecmp(s, "RTMIN+", 6)) {
		long n = strtol(s + 6, &end, 10);
		return !*end && n >= 0 && SIGRTMIN + n < SIGRTMAX ? (int)(SIGRTMIN + n) : -1;
	}
	return -1;
}
