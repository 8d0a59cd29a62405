/*
 * exit_code: leave with the status given as argv[1], by the means named in
 * argv[2]: "exit" (the default, flushing stdio), "_exit" (no flushing) or
 * "return" (from main). A line is printed with stdio first, so the output
 * shows whether buffers were flushed. Usage errors exit with 100.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *how = argc > 2 ? argv[2] : "exit";
	int code;

	if (argc < 2)
		return 100;
	code = atoi(argv[1]);
	printf("leaving with %d by %s\n", code, how);
	if (strcmp(how, "exit") == 0)
		exit(code);
	if (strcmp(how, "_exit") == 0)
		_exit(code);
	if (strcmp(how, "return") == 0)
		return code;
	return 100;
}
