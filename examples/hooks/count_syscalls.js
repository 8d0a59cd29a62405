// Count syscalls per name and print a table when the program ends, like
// strace -c without the times.
//
//   pysentry run --hooks examples/hooks/count_syscalls.js /bin/busybox ls /

const calls = (persistence.glb.calls = {});
const errors = (persistence.glb.errors = {});

hooks.before("*", function count(a0, a1, a2, a3, a4, a5, ctx) {
  const name = ctx.name;
  calls[name] = (calls[name] || 0) + 1;
});

hooks.after("*", function countErrors(a0, a1, a2, a3, a4, a5, ctx) {
  if (ctx.errno !== 0) errors[ctx.name] = (errors[ctx.name] || 0) + 1;
});

hooks.onExit(function table() {
  const names = Object.keys(calls).sort((a, b) => calls[b] - calls[a] || (a < b ? -1 : 1));
  const row = (name, n, e) => `${name.padEnd(20)}${String(n).padStart(8)}${String(e).padStart(8)}`;
  let total = 0;
  let failed = 0;
  print(row("syscall", "calls", "errors"));
  for (const name of names) {
    print(row(name, calls[name], errors[name] || 0));
    total += calls[name];
    failed += errors[name] || 0;
  }
  print(row("total", total, failed));
});
