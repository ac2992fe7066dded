#!/usr/bin/python3
"""Writes the smallest static program of a foreign platform that does one thing: exit with
status 42. The guest runs it through the platform's binfmt_misc handler (guest/platforms
check), so `machine inspect` reports a handler that is registered but cannot run a program
as failing, and 42 (not a bare 0) shows the emulator ran the program's own instructions.

Usage: probe-elf.py PLATFORM OUTPUT     (PLATFORM as in platforms.txt, e.g. linux/arm64)
"""
import os
import struct
import sys

EXIT_STATUS = 42
BASE = 0x400000  # load address, aligned for every platform's page size (64 KiB on ppc64le)

# platform: (ELF class 64?, little-endian?, e_machine, e_flags, code).
# Each code sets the first argument register to 42 and makes the exit system call.
PROGRAMS = {
    # movz x0, #42; movz x8, #93 (exit); svc #0
    "linux/arm64": (True, True, 183, 0, [0xD2800540, 0xD2800BA8, 0xD4000001]),
    # mov r0, #42; mov r7, #1 (exit); svc #0. EABI version 5 in e_flags: the EABI system call
    # convention (number in r7), which QEMU picks by this flag.
    "linux/arm/v7": (False, True, 40, 0x05000000, [0xE3A0002A, 0xE3A07001, 0xEF000000]),
    # addi a0, zero, 42; addi a7, zero, 93 (exit); ecall
    "linux/riscv64": (True, True, 243, 0, [0x02A00513, 0x05D00893, 0x00000073]),
    # li r3, 42; li r0, 1 (exit); sc. e_flags 2: the ELFv2 ABI, whose entry point is code,
    # not a function descriptor.
    "linux/ppc64le": (True, True, 21, 2, [0x3860002A, 0x38000001, 0x44000002]),
    # lghi %r2, 42; svc 1 (exit): big-endian, a 4-byte and a 2-byte instruction.
    "linux/s390x": (True, False, 22, 0, None),
}
S390X_CODE = bytes([0xA7, 0x29, 0x00, EXIT_STATUS, 0x0A, 0x01])


def program(platform):
    wide, little, machine, flags, words = PROGRAMS[platform]
    order = "<" if little else ">"
    code = S390X_CODE if words is None else b"".join(struct.pack(order + "I", w) for w in words)
    ident = b"\x7fELF" + bytes([2 if wide else 1, 1 if little else 2, 1]) + bytes(9)
    if wide:
        header_size, entry_size = 64, 56
        entry = BASE + header_size + entry_size
        size = header_size + entry_size + len(code)
        header = ident + struct.pack(order + "HHIQQQIHHHHHH", 2, machine, 1, entry, header_size, 0, flags,
                                     header_size, entry_size, 1, 0, 0, 0)
        segment = struct.pack(order + "IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, 0x10000)
    else:
        header_size, entry_size = 52, 32
        entry = BASE + header_size + entry_size
        size = header_size + entry_size + len(code)
        header = ident + struct.pack(order + "HHIIIIIHHHHHH", 2, machine, 1, entry, header_size, 0, flags,
                                     header_size, entry_size, 1, 0, 0, 0)
        segment = struct.pack(order + "IIIIIIII", 1, 0, BASE, BASE, size, size, 5, 0x10000)
    return header + segment + code


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in PROGRAMS:
        sys.exit("usage: probe-elf.py PLATFORM OUTPUT\nplatforms: " + " ".join(PROGRAMS))
    with open(sys.argv[2], "wb") as out:
        out.write(program(sys.argv[1]))
    os.chmod(sys.argv[2], 0o755)


if __name__ == "__main__":
    main()
