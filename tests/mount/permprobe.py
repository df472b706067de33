#!/usr/bin/env python3
# tests/mount/permprobe.py — one file operation, as whoever runs it (runuser -u USER --), for
# tests/mount/test_permissions.sh.  Prints the errno name of the first call that failed, or OK.
#
#   permprobe.py read PATH          open O_RDONLY, read all, close
#   permprobe.py list DIR           listdir
#   permprobe.py drop PATH SRC      open O_WRONLY|O_CREAT|O_TRUNC, write SRC's bytes, close
#   permprobe.py write PATH         open an existing file O_WRONLY, write one byte, close
#   permprobe.py append PATH        the same with O_APPEND
#   permprobe.py opentrunc PATH     open O_WRONLY|O_TRUNC, close
#   permprobe.py truncate PATH      truncate(PATH, 0)
#   permprobe.py create PATH        open O_WRONLY|O_CREAT|O_EXCL, close
#   permprobe.py rename FROM TO | link FROM TO | symlink TARGET PATH
#   permprobe.py unlink PATH | mkdir PATH | rmdir PATH
#   permprobe.py chmod PATH MODE    MODE in octal
#   permprobe.py chown PATH UID GID
#   permprobe.py utime PATH         set atime and mtime to 2000-01-01
#   permprobe.py setxattr PATH      user.test = x
#   permprobe.py clear PATH [CMD]   open O_WRONLY|O_TRUNC, write "CMD\n" (default clear), close
import errno, os, sys


def run(op, a):
    if op == "read":
        fd = os.open(a[0], os.O_RDONLY)
        try:
            while os.read(fd, 65536):
                pass
        finally:
            os.close(fd)
    elif op == "list":
        os.listdir(a[0])
    elif op in ("drop", "write", "append", "opentrunc", "create", "clear"):
        flags = {"drop": os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "write": os.O_WRONLY,
                 "append": os.O_WRONLY | os.O_APPEND, "opentrunc": os.O_WRONLY | os.O_TRUNC,
                 "create": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                 "clear": os.O_WRONLY | os.O_TRUNC}[op]
        data = {"drop": lambda: open(a[1], "rb").read() if len(a) > 1 else b"",
                "write": lambda: b"x", "append": lambda: b"x", "opentrunc": lambda: b"",
                "create": lambda: b"",
                "clear": lambda: ((a[1] if len(a) > 1 else "clear") + "\n").encode()}[op]()
        fd = os.open(a[0], flags, 0o644)
        try:
            if data:
                os.write(fd, data)
        except OSError:
            os.close(fd)
            raise
        os.close(fd)   # close() is the outcome of a draft
    elif op == "truncate":
        os.truncate(a[0], 0)
    elif op == "rename":
        os.rename(a[0], a[1])
    elif op == "link":
        os.link(a[0], a[1])
    elif op == "symlink":
        os.symlink(a[0], a[1])
    elif op == "unlink":
        os.unlink(a[0])
    elif op == "mkdir":
        os.mkdir(a[0])
    elif op == "rmdir":
        os.rmdir(a[0])
    elif op == "chmod":
        os.chmod(a[0], int(a[1], 8))
    elif op == "chown":
        os.chown(a[0], int(a[1]), int(a[2]))
    elif op == "utime":
        os.utime(a[0], (946684800, 946684800))
    elif op == "setxattr":
        os.setxattr(a[0], "user.test", b"x")
    else:
        sys.exit(f"permprobe.py: unknown operation {op}")


try:
    run(sys.argv[1], sys.argv[2:])
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
