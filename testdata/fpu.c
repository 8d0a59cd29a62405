/*
 * The floating-point state a program starts with: the x87 control word,
 * MXCSR, and arithmetic that depends on them (extended precision,
 * infinities instead of traps). The sticky exception flags are left out:
 * the emulated CPU does not raise them.
 */
#include <stdio.h>

int main(int argc, char **argv)
{
	unsigned short cw;
	unsigned int mxcsr;
	volatile long double third = 1.0L / 3.0L;
	volatile double zero = argc - 1, big = 1e308;

	(void)argv;
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	__asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
	printf("x87 control word: %#x\n", cw);
	printf("MXCSR: %#x\n", mxcsr);
	printf("1/3 in long double: %.25Lf\n", third);
	printf("1/0: %f, -1/0: %f, overflow: %f\n", 1.0 / zero, -1.0 / zero, big * 10);
	return 0;
}
