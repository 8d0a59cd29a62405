// Every bind(2) fails with EADDRINUSE (one of gWisord's demos).
//
// The syscall is skipped: the program sees -1 with errno 98, as if another
// socket held the address.
//
//   pysentry run --hooks examples/hooks/bind_eaddrinuse.js PROGRAM

const EADDRINUSE = 98;

hooks.AddCbBefore("bind", function refuse(fd) {
  // fd is an int: the upper half of its register means nothing.
  hooks.print(`bind(${Number(BigInt.asIntN(32, BigInt(fd)))}): refused with EADDRINUSE`);
  return { ret: -1, errno: EADDRINUSE };
});
