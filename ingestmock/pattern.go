package ingestmock

import (
	"encoding/binary"
	"io"
)

// patternBufSize is the size of the scratch buffers used to generate pattern
// bytes in bulk (by the blob route and by the Pattern reader's WriteTo).
const patternBufSize = 64 << 10

// Pattern returns a reader of exactly n deterministic pseudo-random bytes
// (n < 0 is treated as 0).
//
// It exists so that tests and benchmarks can send or expect very large bodies
// (hundreds of MiB) and check them by checksum without ever holding them in
// memory: the blob route streams exactly these bytes, and a client can
// recompute the expected digest by hashing Pattern(n) itself.
//
// Byte i of the stream depends only on i (it is byte i%8 of a splitmix64
// hash of i/8), so the same n always gives the same bytes, Pattern(n) is a
// prefix of Pattern(m) for n <= m (a body cut short after k bytes must equal
// Pattern(k)), and the stream never repeats (a proxy that duplicated, dropped
// or reordered a block is caught by the digest). Generation needs no table
// and no shared state and runs at several GB/s; the returned reader also
// implements io.WriterTo, so io.Copy generates straight into a 64 KiB
// buffer.
func Pattern(n int64) io.Reader {
	return &patternReader{n: max(n, 0)}
}

// patternReader yields bytes [off, n) of the pattern.
type patternReader struct {
	off, n int64
}

// Read implements io.Reader.
func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if rem := p.n - p.off; int64(len(b)) > rem {
		b = b[:rem]
	}
	fillPattern(b, p.off)
	p.off += int64(len(b))
	return len(b), nil
}

// WriteTo implements io.WriterTo so io.Copy avoids an extra buffer copy.
func (p *patternReader) WriteTo(w io.Writer) (int64, error) {
	if p.off >= p.n {
		return 0, nil
	}
	buf := make([]byte, min(p.n-p.off, patternBufSize))
	var total int64
	for p.off < p.n {
		chunk := buf[:min(int64(len(buf)), p.n-p.off)]
		fillPattern(chunk, p.off)
		k, err := w.Write(chunk)
		p.off += int64(k)
		total += int64(k)
		if err != nil {
			return total, err
		}
		if k != len(chunk) {
			return total, io.ErrShortWrite
		}
	}
	return total, nil
}

// patternWord returns the i-th little-endian 64-bit word of the pattern: the
// splitmix64 output for counter i (a bijective, well-mixed hash of i).
func patternWord(i uint64) uint64 {
	z := i*0x9e3779b97f4a7c15 + 0x5d1b_a7e5_1a7e_2024 // arbitrary fixed seed
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// fillPattern fills dst with pattern bytes [off, off+len(dst)).
func fillPattern(dst []byte, off int64) {
	// Unaligned head: byte by byte until off is a multiple of 8.
	for len(dst) > 0 && off%8 != 0 {
		dst[0] = byte(patternWord(uint64(off/8)) >> (8 * (off % 8)))
		dst = dst[1:]
		off++
	}
	i := uint64(off / 8)
	for len(dst) >= 32 {
		binary.LittleEndian.PutUint64(dst[0:8], patternWord(i))
		binary.LittleEndian.PutUint64(dst[8:16], patternWord(i+1))
		binary.LittleEndian.PutUint64(dst[16:24], patternWord(i+2))
		binary.LittleEndian.PutUint64(dst[24:32], patternWord(i+3))
		dst = dst[32:]
		i += 4
	}
	for len(dst) >= 8 {
		binary.LittleEndian.PutUint64(dst, patternWord(i))
		dst = dst[8:]
		i++
	}
	if len(dst) > 0 {
		v := patternWord(i)
		for j := range dst {
			dst[j] = byte(v >> (8 * j))
		}
	}
}
