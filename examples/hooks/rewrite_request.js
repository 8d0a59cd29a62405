// Rewrite an outgoing HTTP request on its way out (one of gWisord's demos).
//
// A request line "GET /index.html ..." written by the program leaves as
// "GET /rewritten.html ...". The new text goes into memory mapped for this
// one call; the program is told its whole buffer was written, so it does not
// try to write the difference again.
//
//   pysentry run --hooks examples/hooks/rewrite_request.js \
//       /bin/busybox printf 'GET /index.html HTTP/1.0\r\n\r\n'

const FROM = "GET /index.html ";
const TO = "GET /rewritten.html ";

hooks.before(["write", "sendto"], function rewrite(fd, buf, count, a3, a4, a5, ctx) {
  if (count < FROM.length || count > 65536) return;
  const text = hooks.readString(buf, count);
  if (!text.startsWith(FROM)) return;

  const changed = TO + text.slice(FROM.length);
  const mem = hooks.anonMmap(changed.length + 1);
  hooks.writeString(mem, changed);
  ctx.state.mem = mem;
  ctx.state.size = changed.length + 1;
  ctx.state.count = count;
  return { 1: mem, 2: changed.length };
});

hooks.after(["write", "sendto"], function restore(fd, buf, count, a3, a4, a5, ctx) {
  if (ctx.state.mem === undefined) return;
  hooks.munmap(ctx.state.mem, ctx.state.size);
  if (ctx.errno === 0 && ctx.ret === count) return { ret: ctx.state.count, errno: 0 };
});
