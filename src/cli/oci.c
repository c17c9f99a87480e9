/* `corral oci ...`, and corral run as `corral-runc ...`: the OCI runtime
 * (src/oci/), with runc's command line. */
#include "oci/oci.h"
#include "cli/cli.h"

int cmd_oci(int argc, char **argv)
{
	return oci_main(argc, argv);
}
