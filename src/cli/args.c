/* Argument parsing shared by the subcommands. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

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
