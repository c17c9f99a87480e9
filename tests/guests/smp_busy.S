/* smp_stress.S whose vCPUs all spin once the stress is done, until the VM
 * is stopped from outside (t_smp.sh pauses and resumes it). */
#define FOREVER
#include "smp_stress.S"
