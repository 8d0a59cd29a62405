// Log every path a program opens, with the result, one line per call.
//
//   pysentry run --hooks examples/hooks/log_opens.js /bin/busybox cat /etc/hostname
//
// prints lines like
//   [pid 1] openat("/etc/hostname", O_RDONLY) = 3
//   [pid 1] openat("/nope", O_RDONLY) = -1 ENOENT

const OPENS = ["open", "creat", "openat", "openat2"];
const ERRNO_NAMES = { 1: "EPERM", 2: "ENOENT", 13: "EACCES", 17: "EEXIST", 20: "ENOTDIR", 21: "EISDIR", 40: "ELOOP", 36: "ENAMETOOLONG" };
const ACCESS = ["O_RDONLY", "O_WRONLY", "O_RDWR"];

hooks.before(OPENS, function remember(a0, a1, a2, a3, a4, a5, ctx) {
  const at = ctx.name === "openat" || ctx.name === "openat2";
  try {
    ctx.state.path = ctx.path(at ? 1 : 0);
  } catch (e) {
    ctx.state.path = null; // a bad pointer: the call fails with EFAULT
  }
  const flags = ctx.name === "creat" ? 0o1101 : ctx.name === "openat2" ? 0 : at ? a2 : a1;
  ctx.state.flags = ACCESS[Number(flags) & 3] || String(flags);
});

hooks.after(OPENS, function log(a0, a1, a2, a3, a4, a5, ctx) {
  const path = ctx.state.path === null ? "<bad address>" : JSON.stringify(ctx.state.path);
  const result = ctx.errno ? `-1 ${ERRNO_NAMES[ctx.errno] || "errno " + ctx.errno}` : String(ctx.ret);
  print(`[pid ${ctx.pid}] ${ctx.name}(${path}, ${ctx.state.flags}) = ${result}`);
});
