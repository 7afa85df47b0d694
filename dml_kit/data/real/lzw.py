"""Unix ``compress`` (``.Z``, LZW) decoding: the system ``gzip -dc`` when present, else
the kit's own decoder (:func:`unlzw`)."""

from __future__ import annotations

import shutil
import subprocess


def unlzw(data: bytes) -> bytes:  # noqa: C901 (one state machine: the .Z format's cases)
    """Decompress Unix ``compress`` (``.Z``, LZW) data, as ``uncompress`` does.

    Codes start at 9 bits and grow to the header's maximum; in block mode code 256
    clears the table. Codes are written in groups of 8; when the width changes, the rest
    of the current group is padding and is skipped.
    """
    if len(data) < 3 or data[:2] != b"\x1f\x9d":
        raise ValueError("not a .Z (compress) stream: bad magic number")
    maxbits = data[2] & 0x1F
    block_mode = bool(data[2] & 0x80)
    if not 9 <= maxbits <= 16:
        raise ValueError(f"unsupported .Z maximum code width {maxbits}")
    bits = int.from_bytes(data[3:], "little")
    total_bits = (len(data) - 3) * 8
    maxmaxcode = 1 << maxbits
    prefix = [0] * maxmaxcode
    suffix = bytearray(maxmaxcode)
    suffix[:256] = bytes(range(256))
    n_bits = 9
    maxcode = (1 << n_bits) - 1
    free_ent = 257 if block_mode else 256
    pos = group_start = 0
    out = bytearray()
    oldcode = -1
    finchar = 0
    stack = bytearray()

    def align(pos: int, group_start: int, n_bits: int) -> int:
        group = n_bits * 8
        used = pos - group_start
        return group_start + -(-used // group) * group

    while True:
        if free_ent > maxcode:  # width grows: skip the rest of the current group
            pos = group_start = align(pos, group_start, n_bits)
            n_bits += 1
            maxcode = maxmaxcode if n_bits == maxbits else (1 << n_bits) - 1
        if pos + n_bits > total_bits:
            break
        code = (bits >> pos) & ((1 << n_bits) - 1)
        pos += n_bits
        if oldcode == -1:
            if code >= 256:
                raise ValueError("corrupt .Z stream: first code is not a literal")
            oldcode = finchar = code
            out.append(code)
            continue
        if code == 256 and block_mode:
            pos = group_start = align(pos, group_start, n_bits)
            free_ent = 256  # the next code adds (and wastes) entry 256, as compress does
            n_bits = 9
            maxcode = (1 << n_bits) - 1
            continue
        incode = code
        stack.clear()
        if code >= free_ent:  # KwKwK case
            if code > free_ent:
                raise ValueError("corrupt .Z stream: code beyond the table")
            stack.append(finchar)
            code = oldcode
        while code >= 256:
            stack.append(suffix[code])
            code = prefix[code]
        finchar = suffix[code]
        stack.append(finchar)
        stack.reverse()
        out += stack
        if free_ent < maxmaxcode:
            prefix[free_ent] = oldcode
            suffix[free_ent] = finchar
            free_ent += 1
        oldcode = incode
    return bytes(out)


def _decompress_z(data: bytes) -> bytes:
    """``.Z`` bytes -> raw bytes; uses the system ``gzip -dc`` when present (fast)."""
    gz = shutil.which("gzip")
    if gz is not None:
        try:
            done = subprocess.run([gz, "-dc"], input=data, capture_output=True, check=True,
                                  timeout=600)
            return done.stdout
        except (OSError, subprocess.SubprocessError):
            pass
    return unlzw(data)


