/*
 * args_env: print argc and every argument, then the value of each variable
 * named after "--", or "(unset)". With "--all" instead, print the whole
 * environment sorted. Exit status is the number of unset variables asked for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static int by_text(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	int i, unset = 0, n = 0;

	printf("argc %d\n", argc);
	for (i = 0; i < argc && strcmp(argv[i], "--") != 0; i++)
		printf("argv[%d] '%s'\n", i, argv[i]);
	for (i++; i < argc; i++) {
		const char *v;

		if (strcmp(argv[i], "--all") == 0) {
			while (environ[n])
				n++;
			qsort(environ, n, sizeof(environ[0]), by_text);
			printf("environ has %d entries\n", n);
			for (int j = 0; j < n; j++)
				printf("env '%s'\n", environ[j]);
			continue;
		}
		v = getenv(argv[i]);
		unset += v == NULL;
		printf("%s=%s\n", argv[i], v ? v : "(unset)");
	}
	printf("argv[argc] is NULL: %s\n", argv[argc] == NULL ? "yes" : "no");
	return unset;
}
