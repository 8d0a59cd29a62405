// Inject EINTR into about 1% of read(2) calls, reproducibly.
//
// The choice comes from a small seeded generator (mulberry32), so the same
// seed interrupts the same reads. Set the seed with the program's
// environment: --env EINTR_SEED=7 (default 1). A program that handles EINTR
// must behave exactly as without the hook.
//
//   pysentry run --hooks examples/hooks/eintr_reads.js /bin/busybox cat FILE

const EINTR = 4;
const RATE = 0.01;
let seed = null;
let injected = 0;
let reads = 0;

function random() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

hooks.before("read", function interrupt() {
  if (seed === null) {
    const setting = hooks.getEnvs().find((e) => e.startsWith("EINTR_SEED="));
    seed = setting ? Number(setting.slice("EINTR_SEED=".length)) >>> 0 : 1;
  }
  reads++;
  if (random() < RATE) {
    injected++;
    return { ret: -1, errno: EINTR };
  }
});

hooks.onExit(function summary() {
  print(`eintr_reads: injected EINTR into ${injected} of ${reads} reads`);
});
