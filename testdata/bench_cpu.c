/* A CPU-bound loop with no syscalls: N rounds of an integer hash. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000000;
	unsigned long h = 1469598103934665603UL;

	for (unsigned long i = 0; i < n; i++) {
		h ^= i & 0xff;
		h *= 1099511628211UL;
		h ^= h >> 29;
	}
	printf("%lu\n", h);
	return 0;
}
