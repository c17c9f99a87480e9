/* Device work requested from host threads (machine_io_*): handlers run on
 * the engine's thread only when requested, once per request burst, and the
 * machine's io fd tells an idle engine that work waits. */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>

#include "machine/machine_impl.h"
#include "testhelp.h"

static int runs[2];

static void handler(void *opaque)
{
	runs[(int)(intptr_t)opaque]++;
}

static struct machine *new_machine(void)
{
	struct machine_config cfg = {.mem_size = 2 << 20, .ncpus = 1, .serial_out_fd = -1};
	struct machine *m = NULL;
	CHECK(machine_create(&m, &cfg) == 0);
	return m;
}

static int fd_ready(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) == 1;
}

struct req {
	struct machine *m;
	int id, times;
};

static void *requester(void *arg)
{
	struct req *r = arg;
	for (int k = 0; k < r->times; k++)
		machine_io_request(r->m, r->id);
	return NULL;
}

static void test_io_requests(void)
{
	struct machine *m = new_machine();
	if (!m)
		return;
	CHECK(machine_io_fd(m) == -1); /* nothing can come from the host */
	CHECK(machine_io_run(m) == 0);
	int a = machine_io_register(m, handler, (void *)0);
	int b = machine_io_register(m, handler, (void *)1);
	CHECK(a == 0 && b == 1);
	CHECK(machine_io_fd(m) >= 0);
	CHECK(!fd_ready(machine_io_fd(m)));

	struct req r = {m, b, 5};
	pthread_t t;
	pthread_create(&t, NULL, requester, &r);
	pthread_join(t, NULL);
	CHECK(fd_ready(machine_io_fd(m)));
	runs[0] = runs[1] = 0;
	CHECK(machine_io_run(m) == 1);
	CHECK(runs[0] == 0 && runs[1] == 1); /* five requests, one run */
	CHECK(!fd_ready(machine_io_fd(m)));
	CHECK(machine_io_run(m) == 0);
	CHECK(runs[1] == 1);

	machine_io_request(m, a);
	machine_io_request(m, 99); /* no such handler: ignored */
	machine_io_request(m, -1);
	CHECK(machine_io_run(m) == 1);
	CHECK(runs[0] == 1);
	machine_destroy(m);
}

static void test_io_capacity(void)
{
	struct machine *m = new_machine();
	if (!m)
		return;
	for (int k = 0; k < MACHINE_MAX_IO; k++)
		CHECK(machine_io_register(m, handler, NULL) == k);
	CHECK(machine_io_register(m, handler, NULL) < 0);
	machine_destroy(m);
}

int main(void)
{
	RUN(test_io_requests);
	RUN(test_io_capacity);
	return test_report();
}
