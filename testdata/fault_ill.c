/*
 * fault_ill: an undefined instruction (ud2). The program is killed by SIGILL;
 * the line written before the fault must still reach stdout.
 */
#include <unistd.h>

int main(void)
{
	if (write(1, "about to execute ud2\n", 21) != 21)
		return 1;
	__asm__ volatile("ud2");
	return 2;
}
