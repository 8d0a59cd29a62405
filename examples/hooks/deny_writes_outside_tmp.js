// Deny every change to the file system outside /tmp: opening for writing,
// creating, removing, renaming, linking, changing modes, owners and times.
// The call fails with EACCES and a line names it.
//
//   pysentry run --hooks examples/hooks/deny_writes_outside_tmp.js \
//       /bin/busybox sh -c 'echo x > /etc/x'
//
// Paths are made absolute from the working directory or the directory
// descriptor, and "." and ".." are folded, before they are compared. This is
// a policy, not the sandbox's boundary: a symlink inside /tmp that points
// elsewhere is followed by the kernel after this check. Confinement comes
// from the mounts (--root, --bind, --tmpfs).

const ALLOWED = "/tmp";
const EACCES = 13;
const AT_FDCWD = -100;
const O_WRONLY = 0o1;
const O_RDWR = 0o2;
const O_CREAT = 0o100;
const O_TRUNC = 0o1000;

// Which arguments of each call are paths, and where the dirfd of each is:
// [pathIndex, dirfdIndex or -1].
const PATHS = {
  creat: [[0, -1]],
  mkdir: [[0, -1]],
  mkdirat: [[1, 0]],
  mknod: [[0, -1]],
  mknodat: [[1, 0]],
  rmdir: [[0, -1]],
  unlink: [[0, -1]],
  unlinkat: [[1, 0]],
  rename: [[0, -1], [1, -1]],
  renameat: [[1, 0], [3, 2]],
  renameat2: [[1, 0], [3, 2]],
  link: [[1, -1]],
  linkat: [[3, 2]],
  symlink: [[1, -1]],
  symlinkat: [[2, 1]],
  chmod: [[0, -1]],
  fchmodat: [[1, 0]],
  chown: [[0, -1]],
  lchown: [[0, -1]],
  fchownat: [[1, 0]],
  truncate: [[0, -1]],
  utimes: [[0, -1]],
  utimensat: [[1, 0]],
  setxattr: [[0, -1]],
  lsetxattr: [[0, -1]],
  removexattr: [[0, -1]],
  lremovexattr: [[0, -1]],
};

function normalize(path) {
  const out = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}

function absolute(path, dirfd) {
  if (path.startsWith("/")) return normalize(path);
  let base;
  if (dirfd === AT_FDCWD || dirfd === -1) {
    base = hooks.getCwd();
  } else {
    const info = hooks.getFdInfo(dirfd);
    if (info === null) return null; // EBADF: the kernel will say so
    base = info.path;
  }
  return normalize(base + "/" + path);
}

function allowed(path) {
  return path === ALLOWED || path.startsWith(ALLOWED + "/");
}

function deny(ctx, path) {
  print(`deny_writes_outside_tmp: ${ctx.name} ${path}: EACCES`);
  return { ret: -1, errno: EACCES };
}

function check(ctx, pathIndex, dirfdIndex) {
  const args = ctx.args;
  let path;
  try {
    path = ctx.path(pathIndex);
  } catch (e) {
    return undefined; // a bad pointer: the kernel answers EFAULT
  }
  // utimensat(fd, NULL, ...) changes the times of fd itself.
  if (path === "" && dirfdIndex >= 0) return undefined;
  const full = absolute(path, dirfdIndex >= 0 ? args[dirfdIndex] : -1);
  if (full !== null && !allowed(full)) return deny(ctx, full);
  return undefined;
}

hooks.before(Object.keys(PATHS), function changes(a0, a1, a2, a3, a4, a5, ctx) {
  for (const [pathIndex, dirfdIndex] of PATHS[ctx.name]) {
    const refused = check(ctx, pathIndex, dirfdIndex);
    if (refused) return refused;
  }
});

hooks.before(["open", "openat", "openat2"], function opens(a0, a1, a2, a3, a4, a5, ctx) {
  let flags;
  if (ctx.name === "openat2") {
    // struct open_how starts with the u64 flags.
    const raw = hooks.readBytes(a2, 8);
    flags = raw[0] | (raw[1] << 8) | (raw[2] << 16);
  } else {
    flags = Number(ctx.name === "open" ? a1 : a2);
  }
  if (!(flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC))) return;
  return ctx.name === "open" ? check(ctx, 0, -1) : check(ctx, 1, 0);
});
