"""A seccomp filter that forbids creating new processes but allows threads, for bubblewrap's `--seccomp FD`.

`no_new_processes_filter()` returns a classic-BPF program (an array of `struct sock_filter {u16 code; u8 jt;
u8 jf; u32 k;}` in native byte order, as libseccomp's `seccomp_export_bpf` writes it), built with the
standard library only. Write it to a pipe or a file and pass the descriptor: `bwrap ... --seccomp FD -- cmd`.
The rules, checked in order:

1. `seccomp_data.arch` must be this machine's (AUDIT_ARCH_X86_64 or AUDIT_ARCH_AARCH64), else the whole
   process is killed (SECCOMP_RET_KILL_PROCESS: e.g. 32-bit `int 0x80` syscalls). x32 syscalls (nr >=
   0x40000000, x86_64 only) fail with EPERM;
2. `fork` and `vfork` (x86_64 only: aarch64 has neither) fail with EPERM;
3. `clone` is allowed only with CLONE_THREAD in its flags (a thread: the kernel refuses CLONE_THREAD without
   CLONE_SIGHAND and CLONE_VM), else EPERM. glibc's fork() and posix_spawn use clone without it;
4. `clone3` fails with ENOSYS: its arguments are in memory, which seccomp cannot read, and glibc's
   pthread_create then falls back to clone;
5. everything else is allowed.

What it does NOT cover: execve (exec only replaces the sandboxed process itself), signals, ptrace, files or
the network (bubblewrap's namespaces and mounts are for those), nor resources (threads are unlimited). A
filter is inherited by threads and children and cannot be removed. SECCOMP_RET_KILL_PROCESS needs Linux 4.14+.
"""

import errno
import platform
import struct
import sys

# struct sock_filter opcodes (linux/bpf_common.h).
BPF_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS: A = u32 at offset k of seccomp_data.
BPF_JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K.
BPF_JGE_K = 0x05 | 0x30 | 0x00  # BPF_JMP | BPF_JGE | BPF_K.
BPF_JSET_K = 0x05 | 0x40 | 0x00  # BPF_JMP | BPF_JSET | BPF_K: jump if A & k.
BPF_RET_K = 0x06 | 0x00  # BPF_RET | BPF_K.

# struct seccomp_data {int nr; u32 arch; u64 instruction_pointer; u64 args[6];}: offsets.
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0_LOW = 0, 4, 16  # args[0] low 32 bits, little-endian.

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000  # | errno.
SECCOMP_RET_ALLOW = 0x7FFF0000
CLONE_THREAD = 0x00010000
X32_SYSCALL_BIT = 0x40000000

# machine -> (AUDIT_ARCH_*, syscall numbers of fork/vfork (blocked), clone, clone3).
ARCHES = {
    "x86_64": (0xC000003E, (57, 58), 56, 435),
    "aarch64": (0xC00000B7, (), 220, 435),
}


def supported() -> bool:
  """True on Linux x86_64 and aarch64, the machines `no_new_processes_filter` knows."""
  return sys.platform == "linux" and platform.machine() in ARCHES


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
  """One `struct sock_filter {u16 code; u8 jt; u8 jf; u32 k;}`, native byte order."""
  return struct.pack("HBBI", code, jt, jf, k)


def no_new_processes_filter() -> bytes:
  """The cBPF program (rules in the module docstring) for this machine, for bubblewrap's `--seccomp FD`.

  Raises RuntimeError when not `supported()`, naming the machine.
  """
  if not supported():
    raise RuntimeError(f"no seccomp filter for {sys.platform} {platform.machine()}: Linux x86_64/aarch64 only")
  arch, forks, clone, clone3 = ARCHES[platform.machine()]
  # Instructions as (code, jt, jf, k); a jump target is a label (str), resolved below: 0 = next instruction.
  prog = [(BPF_LD_W_ABS, 0, 0, OFFSET_ARCH), (BPF_JEQ_K, 1, 0, arch),
          (BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS), (BPF_LD_W_ABS, 0, 0, OFFSET_NR)]
  if platform.machine() == "x86_64":
    prog.append((BPF_JGE_K, "eperm", 0, X32_SYSCALL_BIT))
  prog += [(BPF_JEQ_K, "eperm", 0, nr) for nr in forks]
  prog += [(BPF_JEQ_K, "enosys", 0, clone3), (BPF_JEQ_K, 0, "allow", clone),
           (BPF_LD_W_ABS, 0, 0, OFFSET_ARG0_LOW), (BPF_JSET_K, "allow", "eperm", CLONE_THREAD)]
  labels = {"allow": len(prog), "eperm": len(prog) + 1, "enosys": len(prog) + 2}
  prog += [(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW), (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),
           (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS)]
  out = []
  for i, (code, jt, jf, k) in enumerate(prog):
    jt, jf = (labels[j] - i - 1 if isinstance(j, str) else j for j in (jt, jf))
    out.append(_insn(code, jt, jf, k))
  return b"".join(out)
