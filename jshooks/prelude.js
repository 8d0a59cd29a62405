// The JavaScript half of pysentry's syscall hooks.
//
// Evaluated once in a fresh QuickJS context before any user script. It picks
// up the natives the Python side added (globals named __pysentry_*), removes
// them from the global object, and defines what scripts see: `hooks` (alias
// `accessors`), `persistence`, `print`, `console` and the per-call `args`.
//
// Callbacks are called by Python directly (jshooks/engine.py): the chains of
// callbacks per syscall live there. What this file adds around them:
//   * register() checks a registration and works out how many arguments the
//     callback declares (arity()), so Python passes only those;
//   * check() turns what a callback returned into "k=v,...", or "!why";
//   * callBig() calls a callback whose arguments include 64-bit values a
//     Number cannot hold (Python sends them as decimal text);
//   * `context` is the one object passed as the seventh argument: its fields
//     are read from Python when used, so an unused context costs nothing.
"use strict";
(function (global) {
  const PREFIX = "__pysentry_";
  const native = {};
  for (const key of Object.getOwnPropertyNames(global)) {
    if (key.startsWith(PREFIX)) {
      native[key.slice(PREFIX.length)] = global[key];
      delete global[key];
    }
  }

  const CONFIG = JSON.parse(native.config());
  const NAMES = CONFIG.names; // syscall names by number
  const SIGNALS = CONFIG.signals; // signal names by number, [0] unused
  const PER_THREAD = CONFIG.perThread;
  const USER_LINE = CONFIG.userLine; // first line number of user scripts
  const TABLE_SIZE = NAMES.length;
  const PATH_MAX = 4096;
  const NUMBERS = Object.create(null);
  NAMES.forEach((name, nr) => {
    if (name) NUMBERS[name] = nr;
  });
  const TWO63 = 2n ** 63n;
  const TWO64 = 2n ** 64n;

  // --- values crossing between Python and JavaScript ------------------------

  // Natives answer with a number, or with a string whose first character
  // tells what follows (see jshooks/natives.py).
  function unwrap(r) {
    if (typeof r !== "string") return r;
    const body = r.slice(1);
    switch (r[0]) {
      case "S":
        return body;
      case "J":
        return JSON.parse(body);
      case "B":
        return latin1ToBytes(body);
      case "I":
        return fromDecimal(body);
      case "T":
        throw new TypeError(body);
      case "R":
        throw new RangeError(body);
      default:
        throw new Error(body);
    }
  }

  function fromDecimal(text) {
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : BigInt(text);
  }

  // v as a signed 64-bit value (a Number when exact, else a BigInt), or
  // undefined when v is not an integer in [-2**63, 2**64).
  function int64(v) {
    let b;
    if (typeof v === "number") {
      if (Number.isSafeInteger(v)) return v;
      if (!Number.isInteger(v)) return undefined;
      b = BigInt(v);
    } else if (typeof v === "bigint") {
      b = v;
    } else {
      return undefined;
    }
    if (b < -TWO63 || b >= TWO64) return undefined;
    b = BigInt.asIntN(64, b);
    const n = Number(b);
    return Number.isSafeInteger(n) ? n : b;
  }

  function describe(v) {
    if (typeof v === "string") return JSON.stringify(v);
    if (typeof v === "bigint") return `${v}n`;
    if (typeof v === "function") return "a function";
    if (typeof v !== "object" || v === null) return String(v);
    try {
      return JSON.stringify(v, jsonValue);
    } catch (e) {
      return Object.prototype.toString.call(v);
    }
  }

  function jsonValue(key, v) {
    if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : String(v);
    if (v instanceof Uint8Array) return Array.from(v);
    return v;
  }

  // An integer argument of an API function, ready for a native.
  function intArg(fname, what, v) {
    if (typeof v === "number") {
      if (Number.isInteger(v)) return v;
    } else if (typeof v === "bigint") {
      return String(v);
    }
    throw new TypeError(`${fname}: ${what} must be an integer, got ${describe(v)}`);
  }

  function needArgs(fname, got, want, usage) {
    if (got < want) throw new TypeError(`${fname}(${usage}) needs ${want} argument${want > 1 ? "s" : ""}, got ${got}`);
  }

  function latin1ToBytes(s) {
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  const HEX = Array.from({ length: 256 }, (_, i) => (i < 16 ? "0" : "") + i.toString(16));

  // Bytes for a native, as hex text (strings from JavaScript end at a NUL).
  function bytesToHex(fname, b) {
    let arr;
    if (b instanceof Uint8Array) {
      arr = b;
    } else if (b instanceof ArrayBuffer) {
      arr = new Uint8Array(b);
    } else if (ArrayBuffer.isView(b)) {
      arr = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } else if (Array.isArray(b)) {
      for (const x of b) {
        if (!Number.isInteger(x) || x < 0 || x > 255) {
          throw new TypeError(`${fname}: byte values must be integers 0..255, got ${describe(x)}`);
        }
      }
      arr = b;
    } else {
      throw new TypeError(`${fname}: bytes must be a Uint8Array, ArrayBuffer or array of numbers, got ${describe(b)}`);
    }
    const parts = new Array(arr.length);
    for (let i = 0; i < arr.length; i++) parts[i] = HEX[arr[i]];
    return parts.join("");
  }

  // --- registration ---------------------------------------------------------

  let nextHandle = 1;

  function resolve(api, which) {
    if (which === "*") return "*";
    const list = Array.isArray(which) ? which : [which];
    if (list.length === 0) throw new TypeError(`${api}: no syscall named`);
    const out = [];
    for (const w of list) {
      if (typeof w === "number" || typeof w === "bigint") {
        const n = Number(w);
        if (!Number.isInteger(n) || n < 0 || n >= TABLE_SIZE || !NAMES[n]) {
          throw new RangeError(`${api}: no syscall number ${describe(w)}`);
        }
        out.push(n);
      } else if (typeof w === "string") {
        if (w === "*") return "*";
        const n = NUMBERS[w];
        if (n === undefined) throw new TypeError(`${api}: no syscall named ${JSON.stringify(w)}`);
        out.push(n);
      } else {
        throw new TypeError(`${api}: a syscall is a name, a number or "*", got ${describe(w)}`);
      }
    }
    return out;
  }

  // Where the script that called the API stands, as "<input>:LINE:COL"
  // (Python turns that into the script's file name and line).
  function callerWhere() {
    const stack = new Error().stack || "";
    for (const line of stack.split("\n")) {
      const m = /<input>:(\d+):(\d+)/.exec(line);
      if (m && Number(m[1]) >= USER_LINE) return m[0];
    }
    return "";
  }

  // How many of the seven arguments (six registers and the context) a
  // callback can see. A function that only names plain parameters cannot
  // observe the ones it does not name; anything else (rest parameters,
  // defaults, patterns, `arguments`, eval, bound or native functions) gets
  // all seven.
  function arity(fn) {
    let text;
    try {
      text = Function.prototype.toString.call(fn);
    } catch (e) {
      return 7;
    }
    if (/\[native code\]|\barguments\b|\beval\b/.test(text)) return 7;
    const m = /^(?:async\s+)?(?:function\b[^(]*\(([^)]*)\)|\(([^)]*)\)\s*=>|([A-Za-z_$][\w$]*)\s*=>)/.exec(text);
    if (!m) return 7;
    const params = (m[1] ?? m[2] ?? m[3]).trim();
    if (params && !/^[A-Za-z_$][\w$]*(\s*,\s*[A-Za-z_$][\w$]*)*(\s*,)?$/.test(params)) return 7;
    return Math.min(7, fn.length);
  }

  function register(api, phase, which, fn, label) {
    if (typeof fn !== "function") {
      throw new TypeError(`${api}: the callback must be a function, got ${describe(fn)}`);
    }
    const nrs = phase === "exit" ? [] : resolve(api, which);
    let what = "onExit";
    if (phase !== "exit") what = `${phase} ${nrs === "*" ? "*" : nrs.map((n) => NAMES[n]).join(",")}`;
    const handle = nextHandle++;
    const which_ = nrs === "*" ? "*" : nrs.join(",");
    const name = label || fn.name || "anonymous";
    unwrap(native.register(handle, phase, which_, arity(fn), name, what, callerWhere(), fn));
    return handle;
  }

  function remove(handle) {
    needArgs("remove", arguments.length, 1, "handle");
    return Boolean(unwrap(native.unregister(intArg("hooks.remove", "handle", handle))));
  }

  // --- what callbacks return ------------------------------------------------

  // "k=v,..." for a callback's result r: "0".."5" new arguments, "r" the
  // result the guest sees (-errno, or ret when errno is 0); "!why" when r
  // is malformed.
  function check(r, before) {
    if (typeof r !== "object") return `!${describe(r)} (a callback returns undefined, null or an object)`;
    const out = [];
    let ret = false;
    let errno = false;
    for (const k of Object.keys(r)) {
      if (k === "ret") ret = true;
      else if (k === "errno") errno = true;
      else if (k.length === 1 && k >= "0" && k <= "5") {
        if (!before) return `!key "${k}" in ${describe(r)}: an after-callback cannot change the arguments`;
        const x = int64(r[k]);
        if (x === undefined) return `!argument "${k}" must be a 64-bit integer, got ${describe(r[k])}`;
        out.push(`${k}=${x}`);
      } else {
        const allowed = before ? '"0".."5", "ret" and "errno"' : '"ret" and "errno"';
        return `!unknown key ${JSON.stringify(k)} in ${describe(r)} (allowed: ${allowed})`;
      }
    }
    if (ret !== errno) return `!"ret" and "errno" go together, got only "${ret ? "ret" : "errno"}" in ${describe(r)}`;
    if (ret) {
      const x = int64(r.ret);
      if (x === undefined) return `!"ret" must be a 64-bit integer, got ${describe(r.ret)}`;
      const e = typeof r.errno === "bigint" ? Number(r.errno) : r.errno;
      if (!Number.isInteger(e) || e < 0 || e > 4095) {
        return `!errno ${describe(r.errno)} is outside 1..4095 (0 means success)`;
      }
      out.push(`r=${e ? -e : x}`);
    }
    return out.join(",");
  }

  // Call fn with its first n arguments when some are decimal text (BigInts).
  function callBig(fn, n, a0, a1, a2, a3, a4, a5) {
    const b0 = typeof a0 === "string" ? BigInt(a0) : a0;
    const b1 = typeof a1 === "string" ? BigInt(a1) : a1;
    const b2 = typeof a2 === "string" ? BigInt(a2) : a2;
    const b3 = typeof a3 === "string" ? BigInt(a3) : a3;
    const b4 = typeof a4 === "string" ? BigInt(a4) : a4;
    const b5 = typeof a5 === "string" ? BigInt(a5) : a5;
    switch (n) {
      case 1:
        return fn(b0);
      case 2:
        return fn(b0, b1);
      case 3:
        return fn(b0, b1, b2);
      case 4:
        return fn(b0, b1, b2, b3);
      case 5:
        return fn(b0, b1, b2, b3, b4);
      case 6:
        return fn(b0, b1, b2, b3, b4, b5);
      default:
        return fn(b0, b1, b2, b3, b4, b5, context);
    }
  }

  // --- the context: the seventh argument ------------------------------------

  function field(name, i) {
    return unwrap(native.context(name, i === undefined ? -1 : i));
  }

  function values(list) {
    return Object.freeze(list.map(fromDecimal));
  }

  const states = new Map(); // call id -> ctx.state
  function dropState(id) {
    states.delete(id);
  }

  const context = Object.freeze({
    get nr() {
      return field("nr");
    },
    get name() {
      return NAMES[field("nr")];
    },
    get phase() {
      return field("phase");
    },
    get pid() {
      return field("pid");
    },
    get tid() {
      return field("tid");
    },
    get args() {
      return values(field("args"));
    },
    get ret() {
      return field("ret");
    },
    get errno() {
      return field("errno");
    },
    get skipped() {
      return field("skipped");
    },
    get state() {
      const id = field("call");
      let s = states.get(id);
      if (!s) {
        states.set(id, (s = {}));
        field("keep");
      }
      return s;
    },
    path(i) {
      return readString(field("arg", argIndex("ctx.path", i)), PATH_MAX);
    },
    fd(i) {
      return getFdInfo(field("arg", argIndex("ctx.fd", i)));
    },
  });

  function argIndex(fname, i) {
    if (!Number.isInteger(i) || i < 0 || i > 5) {
      throw new RangeError(`${fname}: argument index must be 0..5, got ${describe(i)}`);
    }
    return i;
  }

  // gWisord's global `args`: arg0..arg5, and ret and errno after the call.
  Object.defineProperty(global, "args", {
    get() {
      const o = field("gwargs");
      if (o === null) return undefined;
      for (const k of Object.keys(o)) o[k] = fromDecimal(o[k]);
      return o;
    },
    configurable: true,
  });

  function runExit(fn, code, signal) {
    fn({ code, signal });
  }

  // --- the API --------------------------------------------------------------

  function readBytes(addr, count) {
    needArgs("readBytes", arguments.length, 2, "addr, count");
    return unwrap(native.readBytes(intArg("readBytes", "addr", addr), intArg("readBytes", "count", count)));
  }

  function writeBytes(addr, bytes) {
    needArgs("writeBytes", arguments.length, 2, "addr, bytes");
    return unwrap(native.writeBytes(intArg("writeBytes", "addr", addr), bytesToHex("writeBytes", bytes)));
  }

  function readString(addr, maxlen) {
    needArgs("readString", arguments.length, 2, "addr, maxlen");
    return unwrap(native.readString(intArg("readString", "addr", addr), intArg("readString", "maxlen", maxlen)));
  }

  function writeString(addr, str) {
    needArgs("writeString", arguments.length, 2, "addr, str");
    if (typeof str !== "string") throw new TypeError(`writeString: str must be a string, got ${describe(str)}`);
    return unwrap(native.writeString(intArg("writeString", "addr", addr), str));
  }

  function getFdInfo(fd) {
    needArgs("getFdInfo", arguments.length, 1, "fd");
    return unwrap(native.getFdInfo(intArg("getFdInfo", "fd", fd)));
  }

  function signalNumber(fname, v) {
    if (typeof v === "string") return nameToSignal(v);
    const n = typeof v === "bigint" ? Number(v) : v;
    if (!Number.isInteger(n) || n < 1 || n >= SIGNALS.length) {
      throw new RangeError(`${fname}: no signal ${describe(v)}`);
    }
    return n;
  }

  function nameToSignal(name) {
    needArgs("nameToSignal", arguments.length, 1, "name");
    if (typeof name !== "string") throw new TypeError(`nameToSignal: name must be a string, got ${describe(name)}`);
    let upper = name.trim().toUpperCase();
    if (!upper.startsWith("SIG")) upper = `SIG${upper}`;
    const aliases = { SIGIOT: 6, SIGPOLL: 29, SIGUNUSED: 31 };
    if (upper in aliases) return aliases[upper];
    const n = SIGNALS.indexOf(upper);
    if (n > 0) return n;
    throw new RangeError(`nameToSignal: no signal named ${JSON.stringify(name)}`);
  }

  function signalMaskToNames(mask) {
    needArgs("signalMaskToNames", arguments.length, 1, "mask");
    let m = BigInt.asUintN(64, BigInt(intArg("signalMaskToNames", "mask", mask)));
    const out = [];
    for (let signo = 1; m; signo++, m >>= 1n) if (m & 1n) out.push(SIGNALS[signo]);
    return out;
  }

  function show(v) {
    return typeof v === "string" ? v : describe(v);
  }

  function print(...msgs) {
    native.print(msgs.map(show).join(" "));
  }

  function logJson(msg) {
    needArgs("logJson", arguments.length, 1, "msg");
    const text = JSON.stringify(msg, jsonValue);
    if (text === undefined) throw new TypeError(`logJson: ${describe(msg)} has no JSON form`);
    native.logJson(text);
  }

  const hooks = {
    AddCbBefore: (sysno, fn) => register("AddCbBefore", "before", sysno, fn),
    AddCbAfter: (sysno, fn) => register("AddCbAfter", "after", sysno, fn),
    before: (which, fn) => register("hooks.before", "before", which, fn),
    after: (which, fn) => register("hooks.after", "after", which, fn),
    remove,
    onExit: (fn) => register("hooks.onExit", "exit", null, fn),
    readBytes,
    writeBytes,
    readString,
    writeString,
    getArgv: () => unwrap(native.getArgv()),
    getEnvs: () => unwrap(native.getEnvs()),
    getCwd: () => unwrap(native.getCwd()),
    getFdInfo,
    getFdsInfo: () => unwrap(native.getFdsInfo()),
    getMmaps: () => unwrap(native.getMmaps()),
    getPidInfo: () => unwrap(native.getPidInfo()),
    getSignalInfo: () => {
      const info = unwrap(native.getSignalInfo());
      info.blocked = fromDecimal(info.blocked);
      info.pending = fromDecimal(info.pending);
      info.blockedNames = signalMaskToNames(info.blocked);
      info.pendingNames = signalMaskToNames(info.pending);
      for (const a of info.actions) {
        a.mask = fromDecimal(a.mask);
        a.maskNames = signalMaskToNames(a.mask);
      }
      return info;
    },
    getThreadInfo: function (tid) {
      return unwrap(native.getThreadInfo(arguments.length ? intArg("getThreadInfo", "tid", tid) : -1));
    },
    anonMmap: function (len) {
      needArgs("anonMmap", arguments.length, 1, "len");
      return unwrap(native.anonMmap(intArg("anonMmap", "len", len)));
    },
    munmap: function (addr, len) {
      needArgs("munmap", arguments.length, 2, "addr, len");
      return unwrap(native.munmap(intArg("munmap", "addr", addr), intArg("munmap", "len", len)));
    },
    sendSignal: function (tid, signo) {
      needArgs("sendSignal", arguments.length, 2, "tid, signo");
      return unwrap(native.sendSignal(intArg("sendSignal", "tid", tid), signalNumber("sendSignal", signo)));
    },
    nameToSignal,
    signalMaskToNames,
    stopThreads: () => unwrap(native.stopThreads()),
    resumeThreads: () => unwrap(native.resumeThreads()),
    print,
    logJson,
  };
  hooks.AddHookBefore = hooks.AddCbBefore;
  hooks.AddHookAfter = hooks.AddCbAfter;

  function currentKey() {
    const key = field(PER_THREAD ? "tid" : "pid");
    if (key === 0) throw new Error("persistence.local exists only while a callback runs");
    return key;
  }

  const locals = new Map();
  const glb = {};
  const persistence = Object.freeze({
    get local() {
      const key = currentKey();
      let o = locals.get(key);
      if (!o) locals.set(key, (o = {}));
      return o;
    },
    glb,
    global: glb,
  });

  global.hooks = hooks;
  global.accessors = hooks;
  global.persistence = persistence;
  global.print = print;
  global.console = { log: print, info: print, warn: print, error: print };

  // What Python calls besides the entries.
  native.internals(check, callBig, dropState, runExit, register, context);
})(globalThis);
