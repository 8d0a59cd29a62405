/*
 * fault_ro: a store into read-only memory. With "literal" the target is a
 * string literal (a read-only segment of the executable); with "mmap" it is
 * a PROT_READ anonymous mapping. Either way the program is killed by SIGSEGV.
 * Exit status 2 means the argument was not understood.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void say(const char *s)
{
	if (write(1, s, strlen(s)) < 0)
		_exit(1);
}

int main(int argc, char **argv)
{
	volatile char *volatile target;

	if (argc != 2)
		return 2;
	if (strcmp(argv[1], "literal") == 0) {
		target = (volatile char *)"a string literal";
	} else if (strcmp(argv[1], "mmap") == 0) {
		target = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (target == MAP_FAILED)
			return 1;
	} else {
		return 2;
	}
	say("about to write to read-only memory\n");
	target[0] = 'X';
	say("the write went through\n");
	return 3;
}
