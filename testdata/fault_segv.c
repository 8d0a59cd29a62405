/*
 * fault_segv: a store through a null pointer. The program is killed by
 * SIGSEGV; the line written before the fault must still reach stdout.
 */
#include <unistd.h>

int main(void)
{
	volatile int *volatile target = 0;

	if (write(1, "about to write through NULL\n", 28) != 28)
		return 1;
	*target = 1;
	return 2;
}
