/* runstat OUT cmd [args...]: run cmd, then append to OUT one line
 *   "<user s> <sys s> <wall s> <maxrss KiB> <exit status>"
 * from wait4's rusage (all threads of cmd and the children it waited for),
 * microsecond resolution; cmd's stdout and stderr pass through. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct rusage ru;
	int status;
	double t0;
	pid_t pid;
	FILE *out;

	if (argc < 3) {
		fprintf(stderr, "usage: runstat OUT cmd [args...]\n");
		return 2;
	}
	t0 = now();
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		perror(argv[2]);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0) {
		perror("wait4");
		return 2;
	}
	if (!(out = fopen(argv[1], "a"))) {
		perror(argv[1]);
		return 2;
	}
	fprintf(out, "%.6f %.6f %.6f %ld %d\n",
	        ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
	        ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
	        now() - t0, ru.ru_maxrss,
	        WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	fclose(out);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
