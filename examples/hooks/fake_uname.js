// Fake the kernel's name and the host name: uname(2), and so gethostname,
// `uname -a` and `hostname`, report what is written here.
//
//   pysentry run --hooks examples/hooks/fake_uname.js /bin/busybox uname -a
//
// struct utsname is six fields of 65 bytes: sysname, nodename, release,
// version, machine, domainname.

const FIELD = 65;
const FAKE = {
  sysname: "Linux",
  nodename: "sandbox",
  release: "6.1.0-pysentry",
  version: "#1 SMP PREEMPT_DYNAMIC",
};
const ORDER = ["sysname", "nodename", "release", "version", "machine", "domainname"];

hooks.after("uname", function fake(buf, a1, a2, a3, a4, a5, ctx) {
  if (ctx.errno !== 0) return;
  for (const [name, value] of Object.entries(FAKE)) {
    const at = buf + ORDER.indexOf(name) * FIELD;
    // Clear the field, then write the new value and its NUL.
    hooks.writeBytes(at, new Uint8Array(FIELD));
    hooks.writeString(at, value.slice(0, FIELD - 1));
  }
});
