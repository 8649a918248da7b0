"""Reads a pgolf .pgz artifact (format 2, as `pgolf compress --profile python` writes it) with numpy and the
standard library. decode(path) -> {name: numpy array}: float tensors as float32, bit for bit what
`pgolf decompress` writes; other tensors in their own dtype. A damaged or forged file raises ArtifactError."""
import json, lzma, math, struct, zlib
import numpy as np


class ArtifactError(ValueError):
    pass


def need(ok, what):
    if not ok:
        raise ArtifactError(what)


class Reader:  # varints, as pgolf's rANS streams write them
    def __init__(s, b):
        s.b, s.p = b, 0

    def varint(s):
        v = k = 0
        while 1:
            c = s.b[s.p]
            s.p += 1
            v |= (c & 127) << k
            k += 7
            if c < 128:
                return v
            need(k < 35, 'bad varint')


def vrans(b, n):
    r, B = Reader(b), 1 << 18
    L = r.varint()
    need(0 < L <= 1024 and L & L - 1 == 0, 'bad lane count')
    tables = []
    for _ in range(-(-n // B)):
        vals, nxt = [], 0
        for _ in range(r.varint()):
            a = nxt + r.varint()
            nxt = a + r.varint() + 1
            need(nxt <= 256, 'bad symbol runs')
            vals += range(a, nxt)
        need(vals, 'bad symbol runs')
        if len(vals) == 1:
            tables.append(vals[0])
            continue
        f = np.array([r.varint() for _ in vals])
        need(f.min() > 0 and f.sum() == 4096, 'bad frequencies')
        tables.append((np.repeat(vals, f).astype(np.uint8), np.repeat(f, f).astype(np.uint32),
                       (np.arange(4096) - np.repeat(np.cumsum(f) - f, f)).astype(np.uint32)))
    x = np.frombuffer(b, '<u4', L, r.p).copy()
    w = b[r.p + 4 * L:]
    need(x.min() >= 65536 and len(w) % 2 == 0, 'bad states or words')
    w, p, out = np.frombuffer(w, '<u2').astype(np.uint32), 0, np.empty(n, np.uint8)
    for i, t in enumerate(tables):
        lo, hi = i * B, min(n, i * B + B)
        if type(t) is int:
            out[lo:hi] = t
            continue
        V, F, O = t
        for j in range(lo, hi, L):
            k = min(L, hi - j)
            s = x[:k] & 4095
            out[j:j + k] = V[s]
            y = F[s] * (x[:k] >> 12) + O[s]
            m = y < 65536
            c = int(m.sum())
            need(p + c <= len(w), 'out of words')
            y[m] = y[m] << 16 | w[p:p + c]
            x[:k], p = y, p + c
    need(p == len(w) and (x == 65536).all(), 'bad final states')
    return out.tobytes()


def parse(spec):  # 'a:k=v,w+b' -> [('a', {'k': 'v', '': 'w'}), ('b', {})]
    out = []
    for st in spec.split('+'):
        name, _, ps = st.partition(':')
        out.append((name, dict((q.partition('=')[::2] if '=' in q else ('', q)) for q in ps.split(',') if q)))
    return out


def inflate(o, b, n):  # at most n bytes out, whatever the input claims
    b = o.decompress(b, n + 1)
    need(o.eof, 'a stream is cut short')
    return b


def unbytes(spec, b, n):  # a group's byte codec chain, decoded right to left
    for name, p in parse(spec)[::-1]:
        W = int(p.get('', 0))
        if name == 'zlib':
            b = inflate(zlib.decompressobj(), b, n)
        elif name == 'xz':
            b = inflate(lzma.LZMADecompressor(lzma.FORMAT_XZ), b, n)
        elif name == 'vrans':
            b = vrans(b, n)
        elif name == 'shuffle':
            k = n // W * W
            b = np.frombuffer(b, 'u1', k).reshape(W, -1).T.tobytes() + b[k:]
        elif name == 'rotate':
            k, t = n // W * W, np.dtype('<u%d' % W)
            v = np.frombuffer(b, t, k // W)
            b = (v >> t.type(1) | (v & t.type(1)) << t.type(8 * W - 1)).tobytes() + b[k:]
        else:
            need(name == 'none', 'byte codec %s is not in the python profile: pgolf compress --profile python' % name)
        need(len(b) == n, 'a stream decodes to the wrong size')
    return b


def half(b, n, t='<f2'):
    need(len(b) == 2 * n, 'bad stream size')
    return np.frombuffer(b, t).astype(np.float32)


def leaf(name, p):  # (streams, rows, cols) -> float32 values, row-major
    if name[:3] == 'int':
        q = (1 << int(name[3:]) - 1) - 1

        def f(s, R, C):
            v = np.frombuffer(s[0], 'i1')
            need(len(v) == R * C and abs(v.astype(int)).max(initial=0) <= q, 'bad int symbols')
            d = half(s[1], R)
            need(np.isfinite(d).all(), 'non-finite scale')
            return (v.astype(np.float32).reshape(R, C) * d[:, None]).ravel()
        return f
    if name in ('fp16', 'bf16', 'fp32'):
        def f(s, R, C):
            if name == 'fp32':
                need(len(s[0]) == 4 * R * C, 'bad stream size')
                return np.frombuffer(s[0], '<f4').copy()
            if name == 'fp16':
                return half(s[0], R * C)
            return (half(s[0], R * C, '<u2').astype(np.uint32) << 16).view(np.float32)
        return f
    if name == 'kmeans':
        k, g = int(p['k']), int(p.get('groups', 'rows:0')[5:])

        def f(s, R, C):
            books, per = (-(-R // g), g * C) if g else (1, R * C)
            i = np.frombuffer(s[0], 'u1')
            d = half(s[1], books * k)
            need(len(i) == R * C and i.max(initial=0) < k and np.isfinite(d).all(), 'bad k-means streams')
            return d[np.arange(R * C) // max(per, 1) * k + i]
        return f
    if name == 'ecsq':
        row = p.get('scope') == 'row'

        def f(s, R, C):
            n = R * C
            wide = len(s[0]) == 2 * n and n
            v = np.frombuffer(s[0], '<i2' if wide else 'i1')
            d = np.frombuffer(s[1], '<f4')
            need(len(v) == n and len(d) == (R if row else 1) and np.isfinite(d).all(), 'bad ecsq streams')
            return (v.astype(np.float32).reshape(len(d), -1) * d[:, None]).ravel() if n else np.zeros(0, np.float32)
        return f
    raise ArtifactError('unknown codec ' + name)


def product(f, n, s, R, k, C, out):  # out += A·B, summed in float32 over k ascending, as pgolf does
    need(len(s) == 2 * n, 'bad factor streams')
    a, b = f(s[:n], R, k).reshape(R, k), f(s[n:], k, C).reshape(k, C)
    out = out.reshape(R, C)
    for j in range(k):
        out += np.outer(a[:, j], b[j])
    return out.ravel()


def codec(st):  # (stream count, decode, keeps zeros) of a decoder spec's stages
    name, p = st[-1]
    if name == 'lrcorr':
        n, f, _ = codec(st[:-1])
        m, g, _ = codec(parse(p.get('factors', 'int8')))
        r = int(p['rank'])
        return n + 2 * m, lambda s, R, C: product(g, m, s[n:], R, min(r, R, C), C, f(s[:n], R, C)), 0
    name, p = st[0]
    if name == 'prune':
        n, f, z = codec(st[1:])
        if z:
            return n, f, 1

        def g(s, R, C):
            v = f(s[:-1], R, C)
            need(len(s[-1]) == (R * C + 7) // 8, 'bad mask')
            v[np.unpackbits(np.frombuffer(s[-1], 'u1'), bitorder='little')[:R * C] == 1] = 0
            return v
        return n + 1, g, 1
    if name == 'lowrank':
        n, f, _ = codec(st[1:])
        top = int(p.get('rank', 1 << 62))

        def g(s, R, C):
            need(len(s[0]) == 4, 'bad rank')
            k = int.from_bytes(s[0], 'little')
            need(k <= min(R, C, top), 'bad rank')
            return product(f, n, s[1:], R, k, C, np.zeros(R * C, np.float32))
        return 1 + 2 * n, g, 0
    need(len(st) == 1, 'bad codec pipeline')
    return (1 if name in ('fp16', 'bf16', 'fp32') else 2), leaf(name, p), name != 'kmeans'


DTYPES = {'F64': '<f8', 'F32': '<f4', 'F16': '<f2', 'BF16': '<u2', 'I64': '<i8', 'I32': '<i4', 'I16': '<i2',
          'I8': 'i1', 'U8': 'u1', 'BOOL': '?'}


def decode(path):
    try:
        with open(path, 'rb') as f:
            b = f.read()
        need(b[:8] == b'\x89PGZ\r\n\x1a\n' and len(b) >= 24, 'not a pgolf artifact')
        v, raw, st, crc = struct.unpack('<4I', b[8:24])
        need(v == 2, 'format version %d: this decoder reads version 2' % v)
        m = b[24:24 + st]
        need(len(m) == st and zlib.crc32(m) == crc, 'manifest truncated or corrupt')
        m, p, groups = json.loads(unbytes('xz', m, raw)), 24 + st, []
        for g in m['groups']:
            s = b[p:p + g['stored_size']]
            need(len(s) == g['stored_size'] and zlib.crc32(s) == g['stored_crc32'], 'group %s truncated or corrupt' % g['name'])
            s = unbytes(g['codec'], s, g['raw_size'])
            need(zlib.crc32(s) == g['raw_crc32'], 'group %s decodes to the wrong bytes' % g['name'])
            groups.append(s)
            p += g['stored_size']
        need(p == len(b), 'trailing bytes')
        out = {}
        for t in m['tensors']:
            shape, s = t['shape'], []
            for g, o, n in t['streams']:
                need(o + n <= len(groups[g]), 'stream outside its group')
                s.append(groups[g][o:o + n])
            N = math.prod(shape)
            if t['codec'] == 'raw':
                need(len(s) == 1, 'bad raw tensor')
                a = np.frombuffer(s[0], DTYPES[t['dtype']]).copy()
                if t['dtype'] == 'BF16':
                    a = (a.astype(np.uint32) << 16).view(np.float32)
            else:
                R = shape[0] if len(shape) > 1 else 1
                n, f, _ = codec(parse(t['codec']))
                need(len(s) == n, 'stream count')
                a = f(s, R, N // R if R else 0)
            need(a.size == N, 'tensor size')
            out[t['name']] = a.reshape(shape)
        return out
    except ArtifactError as e:
        raise ArtifactError('%s: %s' % (path, e)) from None
    except Exception as e:
        raise ArtifactError('%s: corrupt artifact (%s: %s)' % (path, type(e).__name__, e)) from None
