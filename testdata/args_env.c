/*
 * args_env: print argc and every argument verbatim. An argument of the form
 * "env:NAME" also prints the value of the variable NAME, or "(unset)"; the
 * argument "env:*" prints the whole environment, sorted. Exit status is the
 * number of variables asked for that were unset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static int by_text(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void all_env(void)
{
	int n = 0;

	while (environ[n])
		n++;
	qsort(environ, n, sizeof(environ[0]), by_text);
	printf("environ has %d entries\n", n);
	for (int i = 0; i < n; i++)
		printf("env '%s'\n", environ[i]);
}

int main(int argc, char **argv)
{
	int unset = 0;

	printf("argc %d\n", argc);
	for (int i = 0; i < argc; i++) {
		const char *name = argv[i] + 4, *value;

		printf("argv[%d] '%s'\n", i, argv[i]);
		if (strncmp(argv[i], "env:", 4) != 0)
			continue;
		if (strcmp(name, "*") == 0) {
			all_env();
			continue;
		}
		value = getenv(name);
		unset += value == NULL;
		printf("%s=%s\n", name, value ? value : "(unset)");
	}
	printf("argv[argc] is NULL: %s\n", argv[argc] == NULL ? "yes" : "no");
	return unset;
}
