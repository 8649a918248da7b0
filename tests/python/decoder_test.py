"""The exported Python decoder (pgolf export-decoder) against pgolf itself, with Debian's python3 and numpy:
every tensor codec example and every byte codec of the python profile decode bit for bit as `pgolf decompress`
does, on synthetic weights and on samples/base9; the kept v2 fixtures too; damaged, forged and v1 artifacts raise
ArtifactError and return nothing. Run by ctest: decoder_test.py PGOLF_BINARY SOURCE_DIR."""
import importlib.util, json, os, random, struct, subprocess, sys, tempfile, time, unittest, zlib, lzma
import numpy as np

PGOLF, SOURCE = sys.argv[1], sys.argv[2]
TMP = tempfile.mkdtemp(prefix='pgolf-python-')
PYTHON_BYTE_CODECS = ['vrans', 'zlib:9', 'xz:9', 'none', 'auto:for=python']


def pgolf(*args):
    r = subprocess.run([PGOLF, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError('pgolf %s: %s' % (' '.join(args), r.stderr.strip()))
    return r.stdout


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_safetensors(path):
    with open(path, 'rb') as f:
        b = f.read()
    n = struct.unpack('<Q', b[:8])[0]
    header, out = json.loads(b[8:8 + n]), {}
    types = {'F32': '<f4', 'F16': '<f2', 'BF16': '<u2', 'I64': '<i8', 'I32': '<i4', 'U8': 'u1'}
    for name, t in header.items():
        if name != '__metadata__':
            lo, hi = t['data_offsets']
            out[name] = np.frombuffer(b[8 + n + lo:8 + n + hi], types[t['dtype']]).reshape(t['shape'])
    return out


def write_safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for name, a in tensors.items():
        header[name] = {'dtype': {np.float32: 'F32', np.int64: 'I64'}[a.dtype.type], 'shape': list(a.shape),
                        'data_offsets': [at, at + a.nbytes]}
        blobs.append(a.tobytes())
        at += a.nbytes
    text = json.dumps(header).encode()
    open(path, 'wb').write(struct.pack('<Q', len(text)) + text + b''.join(blobs))


def codec_examples():
    """The tensor codec table's examples, as compress --help lists them (gptq's need calibration; their
    artifacts name their grid's decoder, which the others cover)."""
    text = pgolf('compress', '--help').split('with examples:')[1]
    specs = [s for line in text.splitlines() if line.startswith('      ') for s in line.split()]
    return [s for s in specs if not s.startswith('gptq')]


def same_bits(test, want, got, what):
    test.assertEqual(sorted(want), sorted(got), what)
    for name in want:
        a, b = np.ascontiguousarray(want[name]), np.ascontiguousarray(got[name])
        if a.dtype == np.uint16:  # a BF16 tensor stored raw: the decoder gives its float32 values
            a = (a.astype(np.uint32) << 16).view(np.float32)
        test.assertEqual(a.shape, b.shape, '%s: %s' % (what, name))
        test.assertTrue(a.tobytes() == b.tobytes(), '%s: %s differs' % (what, name))


class Decoder(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        pgolf('export-decoder', '-o', os.path.join(TMP, 'plain.py'))
        pgolf('export-decoder', '-o', os.path.join(TMP, 'packed.py'), '--packed')
        cls.plain = load_module(os.path.join(TMP, 'plain.py'), 'plain')
        cls.packed = load_module(os.path.join(TMP, 'packed.py'), 'packed')

    def decompressed(self, artifact):
        out = artifact + '.safetensors'
        pgolf('decompress', artifact, '-o', out, '--force')
        return read_safetensors(out)

    def test_exported_file_is_the_source_and_fits_the_size_bar(self):
        self.assertEqual(open(os.path.join(TMP, 'plain.py')).read(),
                         open(os.path.join(SOURCE, 'python', 'pgolf_decode.py')).read())
        packed = os.path.getsize(os.path.join(TMP, 'packed.py'))
        self.assertLessEqual(packed, 6000, 'the decoder as records count code')

    def test_every_codec_example_under_every_python_byte_codec(self):
        rng = np.random.default_rng(7)
        specs, tensors, rules = codec_examples(), {}, []
        self.assertGreater(len(specs), 15)
        for i, spec in enumerate(specs):
            w = rng.normal(0, 0.05, (24, 40)).astype(np.float32)
            w[rng.random(w.shape) < 0.02] *= 15
            w[5] = 0
            tensors['t%02d' % i] = w
            rules += ['--rule', '^t%02d$=%s' % (i, spec)]
        tensors['step'] = np.arange(3, dtype=np.int64)
        source = os.path.join(TMP, 'examples.safetensors')
        write_safetensors(source, tensors)
        for compressor in PYTHON_BYTE_CODECS:
            artifact = os.path.join(TMP, 'examples.%s.pgz' % compressor.replace(':', '_'))
            pgolf('compress', source, '-o', artifact, '--profile', 'python', '--compressor', compressor, '--force', *rules)
            want = self.decompressed(artifact)
            same_bits(self, want, self.plain.decode(artifact), compressor)
            same_bits(self, want, self.packed.decode(artifact), compressor + ' (packed)')

    def test_kept_fixtures(self):
        folder = os.path.join(SOURCE, 'tests', 'fixtures', 'artifacts', 'v2')
        want = read_safetensors(os.path.join(folder, 'every_decoder.expected.safetensors'))
        for family in ('vrans', 'zlib', 'xz'):
            path = os.path.join(folder, 'every_decoder.%s.pgz' % family)
            same_bits(self, want, self.plain.decode(path), family)

    def test_base9_python_profile(self):
        artifact = os.path.join(TMP, 'base9.pgz')
        pgolf('compress', os.path.join(SOURCE, 'samples', 'base9'), '-o', artifact, '--profile', 'python', '--force')
        start = time.perf_counter()
        got = self.plain.decode(artifact)
        seconds = time.perf_counter() - start
        same_bits(self, self.decompressed(artifact), got, 'base9')
        print('\nbase9 --profile python: %d B, decoded by numpy in %.2f s' % (os.path.getsize(artifact), seconds))

    def expect_refused(self, data, why):
        path = os.path.join(TMP, 'bad.pgz')
        open(path, 'wb').write(data)
        with self.assertRaises(self.plain.ArtifactError, msg=why) as caught:
            self.plain.decode(path)
        self.assertIn('bad.pgz', str(caught.exception), why)

    def test_vrans_claims_are_checked_before_they_cost(self):
        # lanes 1, one block whose one run claims 2^34 values: refused before building the run
        with self.assertRaises(self.plain.ArtifactError):
            self.plain.vrans(bytes([1, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x40]), 10)
        with self.assertRaises(self.plain.ArtifactError):  # 3 lanes: not a power of two
            self.plain.vrans(bytes([3, 1, 0, 0]), 10)

    def test_damaged_forged_and_unreadable_artifacts_are_refused(self):
        good = open(os.path.join(SOURCE, 'tests', 'fixtures', 'artifacts', 'v2', 'every_decoder.vrans.pgz'), 'rb').read()
        for n in (0, 7, 23, 24, 100, len(good) // 2, len(good) - 1):
            self.expect_refused(good[:n], 'cut to %d bytes' % n)
        self.expect_refused(good + b'\0', 'a trailing byte')
        rng = random.Random(11)
        for _ in range(200):
            bad = bytearray(good)
            bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
            self.expect_refused(bytes(bad), 'a flipped bit')
        self.expect_refused(open(os.path.join(SOURCE, 'tests', 'fixtures', 'artifacts', 'v1',
                                              'every_decoder.zlib.pgz'), 'rb').read(), 'format version 1')
        # Forged: a manifest with valid checksums and malicious content.
        raw, stored = struct.unpack('<2I', good[12:20])
        manifest = json.loads(lzma.decompress(good[24:24 + stored]))

        def forged(edit):
            m = json.loads(json.dumps(manifest))
            edit(m)
            text = json.dumps(m).encode()
            packed = lzma.compress(text, lzma.FORMAT_XZ, lzma.CHECK_NONE)
            return (good[:8] + struct.pack('<4I', 2, len(text), len(packed), zlib.crc32(packed)) + packed +
                    good[24 + stored:])
        self.expect_refused(forged(lambda m: m['tensors'][1]['streams'][0].__setitem__(2, 10 ** 9)), 'stream past its group')
        self.expect_refused(forged(lambda m: m['tensors'][1].__setitem__('codec', 'int9x')), 'unknown codec')
        self.expect_refused(forged(lambda m: m['tensors'][1].__setitem__('shape', [16, 49])), 'wrong shape')
        self.expect_refused(forged(lambda m: m['tensors'][1]['streams'].pop()), 'a missing stream')
        self.expect_refused(forged(lambda m: m['groups'][1].__setitem__('codec', 'zstd:22')), 'a codec it does not read')
        self.expect_refused(forged(lambda m: m['groups'].pop()), 'a missing group')


if __name__ == '__main__':
    unittest.main(argv=sys.argv[:1], verbosity=2)
